package orders

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"golang.org/x/oauth2"

	"github.com/hostplane/hostplane/pkg/api"
)

// TestOrderThroughMCPNeedsConfirmation orders a server with the order_server
// tool (POST /v1/servers) and then hosting with the order_hosting tool (POST
// /v1/hosting) through /mcp of a follower, with the Go SDK's client, on the
// same processes and wallet as the REST orders. For each tool: the first call
// answers the quote and a confirmation token and charges nothing; the token
// with other arguments, a made-up token and no token at all charge nothing;
// the token with the quoted arguments orders exactly once (one service, one
// invoice, one wallet payment of the price); the spent token is refused.
func TestOrderThroughMCPNeedsConfirmation(t *testing.T) {
	r := newRig(t)
	r.hostingProduct()
	r.credit(2*price + 2*hostingPrice) // enough for two of each: a second charge would show
	cs := r.mcpSession()

	r.mcpConfirmedOnce(cs, mcpOrder{tool: "order_server", price: price, retail: 1200,
		body:      map[string]any{"plan_slug": "vps-t", "label": "mcp-1", "hostname": "mcp-1", "os_template": "base"},
		other:     map[string]any{"plan_slug": "vps-t", "label": "mcp-2", "hostname": "mcp-2", "os_template": "base"},
		reordered: map[string]any{"os_template": "base", "hostname": "mcp-1", "label": "mcp-1", "plan_slug": "vps-t"},
		services:  func() int { return len(r.servers()) },
		ordered: func(o map[string]any) bool {
			srv, _ := o["server"].(map[string]any)
			return srv != nil && srv["hostname"] == "mcp-1"
		}})

	r.mcpConfirmedOnce(cs, mcpOrder{tool: "order_hosting", price: hostingPrice, retail: 600,
		body:      map[string]any{"plan_slug": "web-t", "domain": "mcp.example.com", "username": "mcpshop"},
		other:     map[string]any{"plan_slug": "web-t", "domain": "mcp2.example.com", "username": "mcpshop2"},
		reordered: map[string]any{"username": "mcpshop", "plan_slug": "web-t", "domain": "mcp.example.com"},
		services:  func() int { return len(firstPage(r, r.api(1).Hosting)) },
		ordered: func(o map[string]any) bool {
			h, _ := o["hosting"].(map[string]any)
			sftp, _ := o["sftp_password"].(string)
			db, _ := o["db_password"].(string)
			return h != nil && h["domain"] == "mcp.example.com" && sftp != "" && db != ""
		}})
}

// mcpSession connects the Go SDK's MCP client to /mcp of a follower with the
// rig's API key as the bearer.
func (r *rig) mcpSession() *mcp.ClientSession {
	t := r.t
	t.Helper()
	leader, err := r.c.LeaderIndex(20 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	node := (leader + 1) % r.c.Len()
	hc := oauth2.NewClient(r.ctx, oauth2.StaticTokenSource(&oauth2.Token{AccessToken: r.key})) // the key as the bearer
	hc.Timeout = 60 * time.Second
	tr := &mcp.StreamableClientTransport{Endpoint: r.c.URL(node) + "/mcp", HTTPClient: hc}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "orders-mcp", Version: "1"}, nil).Connect(r.ctx, tr, nil)
	if err != nil {
		t.Fatalf("connect %s/mcp: %v", r.c.URL(node), err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

// mcpOrder is one order tool as mcpConfirmedOnce drives it: the quoted
// arguments (body), other arguments, the quoted ones with their keys in
// another order, the price and retail price, how many services of its kind
// the account has, and whether a confirmed order's answer is the one asked.
type mcpOrder struct {
	tool                   string
	price, retail          int64
	body, other, reordered map[string]any
	services               func() int
	ordered                func(map[string]any) bool
}

// mcpConfirmedOnce checks the tool's double confirmation: nothing charged
// until the token comes back with the quoted arguments, then exactly one
// charge, and the spent token refused.
func (r *rig) mcpConfirmedOnce(cs *mcp.ClientSession, o mcpOrder) {
	t := r.t
	t.Helper()
	var tool *mcp.Tool
	for tl, err := range cs.Tools(r.ctx, nil) {
		if err != nil {
			t.Fatal(err)
		}
		if tl.Name == o.tool {
			tool = tl
		}
	}
	if tool == nil {
		t.Fatalf("tools/list has no %s", o.tool)
	}
	if props, _ := tool.InputSchema.(map[string]any)["properties"].(map[string]any); props["confirmation_token"] == nil {
		t.Fatalf("%s takes no confirmation_token: %v", o.tool, tool.InputSchema)
	}

	// charged is what the account was charged so far: wallet payments,
	// invoices, services of the tool's kind, and the balance.
	type charged struct{ payments, paid, invoices, services, balance int64 }
	state := func() charged {
		t.Helper()
		var c charged
		for _, tx := range firstPage(r, r.api(0).WalletTransactions) {
			if tx.Type == api.TxInvoicePayment {
				c.payments++
				c.paid -= tx.AmountUsdCents
			}
		}
		invs, err := r.api(0).Invoices(r.ctx, 1, 100)
		if err != nil {
			t.Fatal(err)
		}
		c.invoices = int64(invs.Total)
		c.services = int64(o.services())
		c.balance = r.balance()
		return c
	}
	nothing := state()
	call := func(args map[string]any) (map[string]any, *mcp.CallToolResult) {
		t.Helper()
		res, err := cs.CallTool(r.ctx, &mcp.CallToolParams{Name: o.tool, Arguments: args})
		if err != nil {
			t.Fatalf("%s %v: %v", o.tool, args, err)
		}
		if len(res.Content) != 1 {
			t.Fatalf("%s %v: content %+v", o.tool, args, res.Content)
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(res.Content[0].(*mcp.TextContent).Text), &m); err != nil {
			t.Fatalf("%s %v: %v", o.tool, args, err)
		}
		return m, res
	}

	// 1. Without a token: the quote and a token, nothing charged.
	quote, res := call(map[string]any{"body": o.body})
	q, _ := quote["quote"].(map[string]any)
	tok, _ := quote["confirmation_token"].(string)
	if res.IsError || quote["confirmation_required"] != true || tok == "" || q["your_monthly_usd_cents"] != float64(o.price) ||
		q["retail_monthly_usd_cents"] != float64(o.retail) || q["balance_usd_cents"] != float64(nothing.balance) || q["shortfall_usd_cents"] != 0.0 {
		t.Fatalf("%s first call: %v", o.tool, quote)
	}
	if msg, _ := quote["message"].(string); !strings.Contains(msg, "nothing was charged") {
		t.Errorf("%s: the quote's message does not say nothing was charged: %q", o.tool, quote["message"])
	}
	if got := state(); got != nothing {
		t.Fatalf("%s after the quote: %+v; want nothing charged (%+v)", o.tool, got, nothing)
	}

	// 2. Refusals: other arguments with the token, a made-up token; nothing charged.
	if m, res := call(map[string]any{"body": o.other, "confirmation_token": tok}); !res.IsError || !strings.Contains(m["message"].(string), "arguments differ") {
		t.Fatalf("%s: the token with other arguments: %v", o.tool, m)
	}
	if m, res := call(map[string]any{"body": o.body, "confirmation_token": "mcpc_" + strings.Repeat("0", 36)}); !res.IsError || m["code"] != "confirmation_invalid" {
		t.Fatalf("%s: a made-up token: %v", o.tool, m)
	}
	if got := state(); got != nothing {
		t.Fatalf("%s after refused confirmations: %+v; want nothing charged (%+v)", o.tool, got, nothing)
	}

	// 3. The token with the quoted arguments (keys in another order): one order.
	m, res := call(map[string]any{"confirmation_token": tok, "body": o.reordered})
	inv, _ := m["invoice"].(map[string]any)
	if res.IsError || !o.ordered(m) || inv["total_usd_cents"] != float64(o.price) || inv["status"] != api.InvoicePaid {
		t.Fatalf("%s confirmed order: %v", o.tool, m)
	}
	once := nothing
	once.payments++
	once.paid += o.price
	once.invoices++
	once.services++
	once.balance -= o.price
	if got := state(); got != once {
		t.Fatalf("%s after the confirmed order: %+v; want %+v", o.tool, got, once)
	}

	// 4. The same confirmation again (a client whose answer was lost
	// retries it): the first order's answer replayed (its invoice; a
	// secret shown once is not shown again), still one charge; the spent
	// token with other arguments is still refused.
	if again, res := call(map[string]any{"body": o.body, "confirmation_token": tok}); res.IsError || again["invoice"] == nil || again["invoice"].(map[string]any)["id"] != inv["id"] {
		t.Fatalf("%s: the confirmation retried: %v; want the first answer %v", o.tool, again, m)
	}
	if m, res := call(map[string]any{"body": o.other, "confirmation_token": tok}); !res.IsError || !strings.Contains(m["message"].(string), "arguments differ") {
		t.Fatalf("%s: the spent token with other arguments: %v", o.tool, m)
	}
	if got := state(); got != once {
		t.Fatalf("%s after reusing the token: %+v; want %+v", o.tool, got, once)
	}
}
