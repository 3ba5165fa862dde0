package robustness

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// TestOrderWhileTheAgentFindsTheNewLeader: the leader dies while the only
// node's agent is between sessions (its process stopped at the same moment:
// an agent still waiting out its read deadline and dial timeouts on the dead
// coordinator looks so to the new leader). More than the grace period after
// the new leader took over, the node is still ready, and an order is a 503
// node_reconnecting with Retry-After that charges nothing, not a 409
// no_capacity: a new leader records a node unreachable only once its agent
// had time to find it. A node that stays away is then recorded unreachable
// and an order is a 409 no_capacity; once the agent is back, the same order
// (same Idempotency-Key) is served.
func TestOrderWhileTheAgentFindsTheNewLeader(t *testing.T) {
	if testing.Short() {
		t.Skip("runs three coordinator processes and an agent")
	}
	const node, grace = "nl-node-1", 2 * time.Second
	c := framework.NewProcessCluster(t, framework.ProcessOptions{N: 3, Bin: framework.Coordinator(t), RaftTimeout: framework.RaftTimeout,
		Agents: true, AgentPing: 200 * time.Millisecond, AgentGrace: grace})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	acc, key, err := c.NewAccount(ctx, "newleader@example.com", api.AllScopes...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Admin(c.WaitLeader(20*time.Second)).CreateProduct(ctx, "vps-nl", api.ProductRequest{Category: api.ProductVPS, NameEn: "VPS nl",
		RetailMonthlyUsdCents: 500, Specs: api.ProductSpecs{VCPU: 1, RAMMB: 256, DiskGB: 1}}); err != nil {
		t.Fatal(err)
	}
	c.Credit(ctx, acc.ID, 5000)
	sim := c.StartTestAgent(node, strings.Join(c.AgentAddrs(), ","), "-kvm")
	order := func(i int, label string) framework.Reply {
		body := map[string]any{"plan_slug": "vps-nl", "label": label, "hostname": label, "os_template": "base"}
		return framework.NewAPI(t, c.URL(i), nil).Call(key, "POST", "/v1/servers", body, map[string]string{"Idempotency-Key": label})
	}
	nodeOn := func(i int) (api.AgentNode, error) {
		nctx, ncancel := context.WithTimeout(ctx, 5*time.Second)
		defer ncancel()
		return c.Admin(i).AgentNode(nctx, node)
	}
	old := c.WaitLeader(20 * time.Second)
	framework.PollFor(t, "the node connected to the leader", 30*time.Second, 100*time.Millisecond,
		func(context.Context) (api.AgentNode, error) { return nodeOn(old) },
		func(n api.AgentNode) bool { return n.Connected && n.State == api.AgentNodeReady })
	if rep := order(old, "nl-first"); rep.Status != 201 {
		t.Fatalf("an order with the node connected: %s", rep)
	}

	resume := sim.Pause()
	c.Kill(old)
	nl, err := c.LeaderIndexSkipping(map[int]bool{old: true}, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// Twice the grace period after the new leader was seen: long after
	// the grace period from its start.
	time.Sleep(2 * grace)
	// The balance as the new leader answers it: a read it refuses (503
	// read_unconfirmed or no_leader, which README asks clients to send
	// again) is sent again, not taken for a balance of 0.
	balance := func() int64 {
		return framework.PollFor(t, "the wallet on the new leader", 30*time.Second, 100*time.Millisecond,
			func(ctx context.Context) (api.Wallet, error) { return c.Client(nl, key).Wallet(ctx) },
			func(api.Wallet) bool { return true }).BalanceUsdCents
	}
	before := balance()
	if n, err := nodeOn(nl); err != nil || n.Connected || n.State != api.AgentNodeReady {
		t.Errorf("node on the new leader %s %s after it took over: connected %v, state %s; want ready, not connected (err %v)", c.Nodes[nl].ID, 2*grace, n.Connected, n.State, err)
	}
	rep := order(nl, "nl-second")
	if rep.Status != 503 || rep.Code() != "node_reconnecting" || rep.Header.Get("Retry-After") == "" {
		t.Errorf("an order while the agent finds the new leader: %s (Retry-After %q), want 503 node_reconnecting with Retry-After", rep, rep.Header.Get("Retry-After"))
	}
	if strings.Contains(string(rep.Body), node) {
		t.Errorf("the refusal names the node: %s", rep.Body)
	}

	// A node that stays away is recorded unreachable: then there is no room.
	framework.PollFor(t, "the node unreachable on the new leader", 60*time.Second, 200*time.Millisecond,
		func(context.Context) (api.AgentNode, error) { return nodeOn(nl) },
		func(n api.AgentNode) bool { return n.State == api.AgentNodeUnreachable })
	if rep := order(nl, "nl-second"); rep.Status != 409 || rep.Code() != "no_capacity" {
		t.Errorf("an order with the node unreachable: %s, want 409 no_capacity", rep)
	}
	if got := balance(); got != before {
		t.Errorf("the refused orders charged %d cents", before-got)
	}

	resume()
	framework.PollFor(t, "the node connected to the new leader", 60*time.Second, 100*time.Millisecond,
		func(context.Context) (api.AgentNode, error) { return nodeOn(nl) },
		func(n api.AgentNode) bool { return n.Connected && n.State == api.AgentNodeReady })
	if rep := order(nl, "nl-second"); rep.Status != 201 {
		t.Errorf("the same order once the node is back: %s", rep)
	}
}
