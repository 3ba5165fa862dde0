package audit

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// TestOrdersWhileTheNodeReconnects: the only node's agent goes quiet (its
// process stopped, as a short network loss or an agent reconnecting to a new
// leader looks to the coordinators) while it is still within --agent-grace,
// so still ready. An order for a server or a hosting account is then a 503
// node_reconnecting with Retry-After that names no node and charges nothing —
// not a 409 no_capacity, which tells a customer's script to give up while
// the node has room. Once the agent is back, the same order (same
// Idempotency-Key) is served.
func TestOrdersWhileTheNodeReconnects(t *testing.T) {
	const node = "rc-node-1"
	c := framework.NewProcessCluster(t, framework.ProcessOptions{N: 1, Bin: framework.Coordinator(t), RaftTimeout: framework.RaftTimeout,
		Agents: true, AgentPing: 200 * time.Millisecond, AgentGrace: 60 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	acc, key, err := c.NewAccount(ctx, "reconnect@example.com", api.AllScopes...)
	if err != nil {
		t.Fatal(err)
	}
	adm := c.Admin(0)
	for slug, p := range map[string]api.ProductRequest{
		"vps-a": {Category: api.ProductVPS, NameEn: "VPS A", RetailMonthlyUsdCents: serverPrice, Specs: api.ProductSpecs{VCPU: 1, RAMMB: 256, DiskGB: 1}},
		"web-a": {Category: api.ProductHosting, NameEn: "Web A", RetailMonthlyUsdCents: hostingPrice, Specs: api.ProductSpecs{Hosting: &api.HostingPlan{PHPWorkers: 2, PHPMemoryMiB: 64, MaxExecutionSeconds: 20, UploadMiB: 8, DiskMiB: 1024}}},
	} {
		createProduct(ctx, t, adm, slug, p)
	}
	c.Credit(ctx, acc.ID, 2*serverPrice+hostingPrice)
	sim := c.StartTestAgent(node, strings.Join(c.AgentAddrs(), ","), "-kvm", "-hosting")
	a := framework.NewAPI(t, c.URL(0), nil)
	balance := func() int64 {
		var w api.Wallet
		a.Call(key, "GET", "/v1/billing/wallet", nil, nil).Decode(t, &w)
		return w.BalanceUsdCents
	}
	if rep := a.Call(key, "POST", "/v1/servers", serverBody("rc-first"), map[string]string{"Idempotency-Key": "rc-first"}); rep.Status != 201 {
		t.Fatalf("an order with the node connected: %s", rep)
	}

	resume := sim.Pause()
	c.WaitNode(node, 30*time.Second, "not connected but still ready", func(n api.AgentNode) bool {
		return !n.Connected && n.State == api.AgentNodeReady
	})
	before := balance()
	for _, o := range []struct {
		path string
		body map[string]any
		idem string
	}{
		{"/v1/servers", serverBody("rc-second"), "rc-second"},
		{"/v1/hosting", hostingBody("rcshop"), "rc-shop"},
	} {
		rep := a.Call(key, "POST", o.path, o.body, map[string]string{"Idempotency-Key": o.idem})
		if rep.Status != 503 || rep.Code() != "node_reconnecting" || rep.Header.Get("Retry-After") == "" {
			t.Errorf("POST %s while the node reconnects: %s (Retry-After %q), want 503 node_reconnecting with Retry-After", o.path, rep, rep.Header.Get("Retry-After"))
		}
		if strings.Contains(string(rep.Body), node) {
			t.Errorf("POST %s: the refusal names the node: %s", o.path, rep.Body)
		}
	}
	if got := balance(); got != before {
		t.Errorf("the refused orders charged %d cents", before-got)
	}

	resume()
	c.WaitNode(node, 30*time.Second, "connected again", func(n api.AgentNode) bool { return n.Connected && n.State == api.AgentNodeReady })
	if rep := a.Call(key, "POST", "/v1/servers", serverBody("rc-second"), map[string]string{"Idempotency-Key": "rc-second"}); rep.Status != 201 {
		t.Errorf("the same order once the node is back: %s", rep)
	}
}
