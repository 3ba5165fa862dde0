package audit

import (
	"context"
	"encoding/base64"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/internal/consoletoken"
	"github.com/hostplane/hostplane/pkg/api"
	pb "github.com/hostplane/hostplane/proto"
	"github.com/hostplane/hostplane/tests/framework"
)

// TestConsoleTokenFollowsTheAgentsProtocol: a rolling upgrade of a
// hypervisor, seen from the customer. While the server's host runs an agent
// of protocol 1.4 (which knows no sealing key), POST
// /v1/servers/{id}/console gives an hpc1 token, the one such an agent
// accepts (its claims readable: the node id and the VM name). Once the same
// node's agent is upgraded (1.5), the token is hpc2 and, decoded as the
// customer would decode it, names neither the node nor the VM. Before, every
// token was hpc1, readable, whatever the agent.
func TestConsoleTokenFollowsTheAgentsProtocol(t *testing.T) {
	const node = "cons-node-1"
	c := framework.NewProcessCluster(t, framework.ProcessOptions{N: 1, Bin: framework.Coordinator(t), Agents: true,
		AgentPing: 200 * time.Millisecond, AgentGrace: 2 * time.Second})
	r := rigOn(t, c, "constok", 2*time.Minute)
	adm := c.Admin(0)
	jt, err := adm.CreateJoinToken(r.ctx, api.JoinTokenCreateRequest{TTLSeconds: 600, Description: node})
	if err != nil {
		t.Fatal(err)
	}
	bin := framework.Binary(t, framework.PkgTestAgent, framework.BuildOptions{})
	args := []string{"-coordinator", c.AgentAddrs()[0], "-token", jt.Token, "-node", node, "-dir", t.TempDir(), "-kvm", "-console-url", "https://console.example.test:8423"}
	connectedAt := func(v uint32) {
		t.Helper()
		c.WaitNode(node, 30*time.Second, "connected", func(n api.AgentNode) bool { return n.Connected && n.ProtocolVersion == v })
	}
	old := framework.StartSim(t, bin, append(args, "-protocol", "104")...)
	connectedAt(104)

	createProduct(r.ctx, t, adm, "vps-a", api.ProductRequest{Category: api.ProductVPS, NameEn: "VPS A", RetailMonthlyUsdCents: serverPrice,
		Specs: api.ProductSpecs{VCPU: 1, RAMMB: 256, DiskGB: 1}})
	c.Credit(r.ctx, r.accA.ID, serverPrice)
	rep := r.call(0, r.keyA, "POST", "/v1/servers", serverBody("cons"), map[string]string{"Idempotency-Key": "order-cons"})
	if rep.Status != 201 {
		t.Fatalf("order: %s", rep)
	}
	var so api.ServerOrder
	rep.Decode(t, &so)
	framework.WaitActionSuccess(t, r.apis[0].Client(r.keyA), so.Action.ID, 60*time.Second)
	var srv api.Server
	r.call(0, r.keyA, "GET", "/v1/servers/"+so.Server.ID, nil, nil).Decode(t, &srv)
	as, err := adm.Server(r.ctx, srv.ID) // the libvirt domain's name: the operator's, not the customer's
	if err != nil || srv.Status != api.ServerRunning || as.VMName == "" {
		t.Fatalf("the server: %+v, %+v, %v", srv, as, err)
	}
	vm := as.VMName

	// token is the console token of a fresh console URL, and what decoding
	// each of its parts as the customer can shows.
	token := func() (string, string) {
		t.Helper()
		var con api.ServerConsole
		rep := r.call(0, r.keyA, "POST", "/v1/servers/"+srv.ID+"/console", nil, nil)
		if rep.Status != 201 {
			t.Fatalf("console: %s", rep)
		}
		rep.Decode(t, &con)
		u, err := url.Parse(con.WebSocketURL)
		if err != nil {
			t.Fatal(err)
		}
		tok := u.Query().Get("token")
		shown := []string{con.URL, con.WebSocketURL, tok}
		for _, p := range strings.Split(tok, ".") {
			if b, err := base64.RawURLEncoding.DecodeString(p); err == nil {
				shown = append(shown, string(b))
			}
		}
		return tok, strings.Join(shown, "\n")
	}
	tok, shown := token()
	if !strings.HasPrefix(tok, consoletoken.Prefix+".") || !strings.Contains(shown, node) || !strings.Contains(shown, vm) {
		t.Errorf("with a 1.4 agent: token %.12q…, want %s (what that agent accepts), its claims readable", tok, consoletoken.Prefix)
	}

	// The node's agent is upgraded: the same node, credentials and server.
	old.Stop()
	framework.StartSim(t, bin, args...)
	connectedAt(pb.ProtocolVersion)
	ctx, cancel := context.WithTimeout(r.ctx, 30*time.Second)
	defer cancel()
	for ctx.Err() == nil { // the coordinator holds the new session once the node shows it
		if tok, shown = token(); strings.HasPrefix(tok, consoletoken.SealedPrefix+".") {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.HasPrefix(tok, consoletoken.SealedPrefix+".") {
		t.Fatalf("with a 1.5 agent: token %.12q…, want %s", tok, consoletoken.SealedPrefix)
	}
	for _, secret := range []string{node, vm} {
		if strings.Contains(shown, secret) {
			t.Errorf("with a 1.5 agent the console URLs show %q:\n%s", secret, shown)
		}
	}
}
