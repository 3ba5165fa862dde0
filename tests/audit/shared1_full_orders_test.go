package audit

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"golang.org/x/oauth2"

	"github.com/hostplane/hostplane/pkg/api"
)

// TestOrdersOutsideIn: account A buys a server, hosting and a domain; then
// an Idempotency-Key reused with another body is a 422 that charges nothing
// (for each of the three orders, through a follower); A's key sent by B is
// B's own request, never A's answer; B, with every scope, gets on every
// operation /openapi.json lists under A's server, hosting, domain, action,
// invoice, webhook (and its delivery) and ticket the answer an unknown id of
// the same kind gets (404, the same code and message but for the id asked),
// with none of A's other ids in it, through the leader and a follower, over
// REST and as MCP tools, and A's services are unchanged after; malformed, unknown-field and over-1-MiB order bodies are
// 400/400/413 and charge nothing; bad paging on every list is a 400 naming
// the parameter.
func TestOrdersOutsideIn(t *testing.T) {
	r := sharedRig(t, "audit")
	r.c.Credit(r.ctx, r.accA.ID, serverPrice+hostingPrice+domainPrice+5000)
	own := r.buy()
	before := r.charged(r.keyA)
	if before.servers != 1 || before.hosting != 1 || before.domains != 1 || before.invoices != 3 || before.balance != 5000 {
		t.Fatalf("after three orders: %+v", before)
	}
	f := r.follower()

	t.Run("idempotency key reused with another body", func(t *testing.T) {
		for _, tc := range []struct {
			path, key   string
			same, other map[string]any
		}{
			{"/v1/servers", "srv-1", serverBody("web-1"), serverBody("web-2")},
			{"/v1/hosting", "web-1", hostingBody("shopa"), hostingBody("shopb")},
			{"/v1/domains", "dom-1", domainBody("ada-audit.test"), domainBody("bob-audit.test")},
		} {
			hdr := map[string]string{"Idempotency-Key": tc.key}
			for _, i := range []int{f, (f + 1) % 3} {
				if rep := r.call(i, r.keyA, "POST", tc.path, tc.other, hdr); rep.Status != 422 || rep.Code() != "idempotency_key_reused" {
					t.Errorf("%s with %s and another body on coordinator %d: %s, want 422 idempotency_key_reused", tc.path, tc.key, i, rep)
				}
			}
			if rep := r.call(f, r.keyA, "POST", tc.path, tc.same, hdr); rep.Status >= 300 || rep.Header.Get("Idempotent-Replayed") != "true" {
				t.Errorf("%s with %s and the same body: %s (replayed %q), want the first answer", tc.path, tc.key, rep, rep.Header.Get("Idempotent-Replayed"))
			}
			// The same key from another account is that account's own
			// request, showing none of A's order.
			// B has no money (402); hosting's username and the domain name
			// are A's already (409).
			rep := r.call(f, r.keyB, "POST", tc.path, tc.same, hdr)
			if (rep.Status != http.StatusPaymentRequired && rep.Status != http.StatusConflict) || rep.Header.Get("Idempotent-Replayed") != "" {
				t.Errorf("%s with A's key %s sent by B: %s, want B's own 402 or 409", tc.path, tc.key, rep)
			}
			for _, id := range []string{own.server, own.hosting, own.domain, own.invoice} {
				if strings.Contains(string(rep.Body), id) {
					t.Errorf("%s with A's key sent by B shows A's %s: %s", tc.path, id, rep)
				}
			}
		}
		if after := r.charged(r.keyA); after != before {
			t.Fatalf("refused and replayed orders changed A's account: %+v → %+v", before, after)
		}
		if b := r.charged(r.keyB); b != (charged{}) {
			t.Fatalf("B's refused orders left %+v", b)
		}
	})

	t.Run("another account's ids are unknown ids", func(t *testing.T) {
		probed := 0
		for _, p := range r.probesUnder(own) {
			for _, i := range []int{0, f} {
				// A route without a body is sent none (a nil map would be
				// the body null, a 400 since 245fa2f, before the id is read).
				var body any
				if p.body != nil {
					body = p.body
				}
				mine := r.call(i, r.keyB, p.method, p.fill(p.id), body, nil)
				none := r.call(i, r.keyB, p.method, p.fill(unknown(p.id)), body, nil)
				probed++
				if mine.Status != 404 || mine.Status != none.Status || !sameError(string(mine.Body), string(none.Body), p.id) {
					t.Errorf("B on A's %s %s (coordinator %d): %d %s; an unknown id: %d %s", p.method, p.path, i, mine.Status, mine.Body, none.Status, none.Body)
				}
				own.notIn(t, "B on A's "+p.method+" "+p.path, strings.ReplaceAll(string(mine.Body), p.id, "<the id asked>"), r.accA.ID)
			}
		}
		if probed < 2*38 {
			t.Fatalf("only %d probes: /openapi.json lists fewer operations under the ids than expected", probed)
		}
		// Nothing B sent touched A's services.
		cl := r.apis[0].Client(r.keyA)
		if s, err := cl.Server(r.ctx, own.server); err != nil || s.Status != api.ServerRunning || s.Label != "web-1" {
			t.Errorf("A's server after B's probes: %+v %v", s, err)
		}
		var h api.HostingAccount
		r.call(0, r.keyA, "GET", "/v1/hosting/"+own.hosting, nil, nil).Decode(t, &h)
		if h.Status == api.HostingSuspended || h.PHPVersion == "8.3" {
			t.Errorf("A's hosting after B's probes: %+v", h)
		}
		var d api.Domain
		r.call(0, r.keyA, "GET", "/v1/domains/"+own.domain, nil, nil).Decode(t, &d)
		if !d.AutoRenew {
			t.Errorf("A's domain after B's probes: %+v", d)
		}
		var wh api.Webhook
		r.call(0, r.keyA, "GET", "/v1/webhooks/"+own.webhook, nil, nil).Decode(t, &wh)
		if wh.Description == "mine" || !wh.IsActive {
			t.Errorf("A's webhook after B's probes: %+v", wh)
		}
		var tk api.Ticket
		r.call(0, r.keyA, "GET", "/v1/tickets/"+own.ticket, nil, nil).Decode(t, &tk)
		if len(tk.Messages) != 1 || tk.Status != api.TicketOpen {
			t.Errorf("A's ticket after B's probes: %+v", tk)
		}
		if after := r.charged(r.keyA); after != before {
			t.Errorf("B's probes changed A's account: %+v → %+v", before, after)
		}
		t.Logf("%d probes of A's ids by B", probed)
	})

	t.Run("another account's ids through MCP", func(t *testing.T) {
		// B's MCP client on a follower: each operation's tool with A's ids
		// answers as the tool with an unknown id does, a REST 404.
		hc := oauth2.NewClient(r.ctx, oauth2.StaticTokenSource(&oauth2.Token{AccessToken: r.keyB}))
		hc.Timeout = 30 * time.Second
		cs, err := mcp.NewClient(&mcp.Implementation{Name: "audit", Version: "1"}, nil).Connect(r.ctx, &mcp.StreamableClientTransport{Endpoint: r.c.URL(f) + "/mcp", HTTPClient: hc}, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer cs.Close()
		// tool calls the tool name with args (what names the call in a
		// failure): its result and the text of its content.
		tool := func(what, name string, args map[string]any) (*mcp.CallToolResult, string) {
			res, err := cs.CallTool(r.ctx, &mcp.CallToolParams{Name: name, Arguments: args})
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			var text strings.Builder
			for _, c := range res.Content {
				if tc, ok := c.(*mcp.TextContent); ok {
					text.WriteString(tc.Text)
				}
			}
			return res, text.String()
		}
		callWith := func(p probe, id string) (*mcp.CallToolResult, string) {
			args := map[string]any{"id": id}
			for _, prm := range []struct{ name, v string }{{"ip", own.serverIP}, {"snapshotId", "snap_0000000000000000"}, {"action", "reboot"}, {"deliveryId", own.delivery}, {"name", own.host}} {
				if strings.Contains(p.path, "{"+prm.name+"}") {
					args[prm.name] = prm.v
				}
			}
			if p.body != nil {
				args["body"] = p.body
			}
			return tool(snake(p.operationID), snake(p.operationID), args)
		}
		probed := 0
		for _, p := range r.probesUnder(own) {
			if p.operationID == "" || p.path == "/servers/{id}/stats" {
				continue // stats may stream: no tool call
			}
			mine, mineText := callWith(p, p.id)
			none, noneText := callWith(p, unknown(p.id))
			probed++
			if !mine.IsError || mine.Meta["hostplane/status"] != 404.0 || mine.Meta["hostplane/status"] != none.Meta["hostplane/status"] || !sameError(mineText, noneText, p.id) {
				t.Errorf("B's %s with A's ids: %v %v %.300s; with an unknown id: %v %.300s", snake(p.operationID), mine.IsError, mine.Meta["hostplane/status"], mineText, none.Meta["hostplane/status"], noneText)
			}
			own.notIn(t, "B's "+snake(p.operationID), strings.ReplaceAll(mineText, p.id, "<the id asked>"), r.accA.ID)
		}
		if probed < 34 {
			t.Fatalf("only %d tools probed", probed)
		}
		// list_actions takes A's ids as query parameters: the same 404 as
		// an unknown id, nothing of A's in it.
		listWith := func(name, v string) (*mcp.CallToolResult, string) {
			return tool("list_actions "+name+"="+v, "list_actions", map[string]any{name: v})
		}
		for _, q := range []struct{ name, id string }{{"resource_id", own.server}, {"resource_id", own.hosting}, {"cursor", own.action}} {
			mine, mineText := listWith(q.name, q.id)
			none, noneText := listWith(q.name, unknown(q.id))
			if !mine.IsError || mine.Meta["hostplane/status"] != 404.0 || none.Meta["hostplane/status"] != 404.0 || !sameError(mineText, noneText, q.id) {
				t.Errorf("B's list_actions %s=A's %s: %v %v %.300s; with an unknown id: %v %.300s", q.name, q.id, mine.IsError, mine.Meta["hostplane/status"], mineText, none.Meta["hostplane/status"], noneText)
			}
			own.notIn(t, "B's list_actions "+q.name, strings.ReplaceAll(mineText, q.id, "<the id asked>"), r.accA.ID)
		}
		if after := r.charged(r.keyA); after != before {
			t.Errorf("B's tool calls changed A's account: %+v → %+v", before, after)
		}
		t.Logf("%d tools called with A's ids by B", probed)
	})

	t.Run("bad order bodies", func(t *testing.T) {
		huge := `{"plan_slug":"vps-a","label":"` + strings.Repeat("x", 1<<20) + `","hostname":"h","os_template":"base"}`
		for _, path := range []string{"/v1/servers", "/v1/hosting", "/v1/domains", "/v1/domains/transfer", "/v1/servers/quote"} {
			for _, tc := range []struct {
				body   string
				status int
				code   string
			}{
				{huge, 413, ""},
				{`{"plan_slug":"vps-a",`, 400, ""},
				{`[]`, 400, ""},
				{`{"plan_slug":"vps-a","is_admin":true}`, 400, ""},
				{`{"plan_slug":"vps-a"}{"plan_slug":"vps-a"}`, 400, ""},
			} {
				for k, i := range []int{0, f} {
					// Each a key of its own: a 503 of an election under load is
					// sent again (a refusal changes nothing and is not stored).
					hdr := map[string]string{"Content-Type": "application/json", "Idempotency-Key": fmt.Sprintf("bad-%s-%d-%d-%d", path, tc.status, len(tc.body), k)}
					rep := r.call(i, r.keyA, "POST", path, tc.body, hdr)
					if rep.Status != tc.status || rep.DecodeError(t).Message == "" {
						t.Errorf("POST %s %.40q on coordinator %d: %d %.300s, want %d with a message", path, tc.body, i, rep.Status, rep.Body, tc.status)
					}
				}
			}
		}
		// The lists (SPEC: limit at most 200, pages from 1) refuse bad paging
		// with a 400 naming the parameter, and page the rest.
		for _, list := range []string{"/v1/servers", "/v1/hosting", "/v1/domains", "/v1/billing/invoices", "/v1/billing/wallet/transactions",
			"/v1/webhooks/" + own.webhook + "/deliveries", "/v1/tickets"} {
			for _, q := range []string{"limit=0", "limit=201", "limit=x", "limit=-1", "page=0", "page=-1", "page=x", "limit=99999999999999999999"} {
				rep := r.call(f, r.keyA, "GET", list+"?"+q, nil, nil)
				param, _, _ := strings.Cut(q, "=")
				if rep.Status != 400 || !strings.Contains(string(rep.Body), param) {
					t.Errorf("GET %s?%s: %d %.300s, want 400 naming %s", list, q, rep.Status, rep.Body, param)
				}
			}
			if rep := r.call(f, r.keyA, "GET", list+"?limit=200&page=1000000", nil, nil); rep.Status != 200 {
				t.Errorf("GET %s far past the last page: %s, want 200 and an empty page", list, rep)
			}
		}
		if after := r.charged(r.keyA); after != before {
			t.Fatalf("bad bodies changed A's account: %+v → %+v", before, after)
		}
	})

	// Last: it reboots A's server (actions_list_test.go).
	t.Run("the account's list of actions", func(t *testing.T) { checkActionList(t, r, own, f) })
}
