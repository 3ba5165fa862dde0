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
// tool (POST /v1/servers) through /mcp of a follower, with the Go SDK's
// client, on the same processes and wallet as the REST orders: the first call
// answers the quote and a confirmation token and charges nothing; the token
// with other arguments, a made-up token and no token at all charge nothing;
// the token with the quoted arguments orders exactly once (one server, one
// invoice, one wallet payment of the price); the spent token is refused.
func TestOrderThroughMCPNeedsConfirmation(t *testing.T) {
	r := newRig(t)
	r.credit(2 * price) // enough for two: a second charge would show
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
	defer cs.Close()

	var tool *mcp.Tool
	for tl, err := range cs.Tools(r.ctx, nil) {
		if err != nil {
			t.Fatal(err)
		}
		if tl.Name == "order_server" {
			tool = tl
		}
	}
	if tool == nil {
		t.Fatal("tools/list has no order_server")
	}
	if props, _ := tool.InputSchema.(map[string]any)["properties"].(map[string]any); props["confirmation_token"] == nil {
		t.Fatalf("order_server takes no confirmation_token: %v", tool.InputSchema)
	}

	// charged is what the account was charged so far: wallet payments,
	// invoices, servers.
	type charged struct{ payments, paid, invoices, servers int64 }
	state := func() charged {
		t.Helper()
		var c charged
		txs, err := r.api(0).WalletTransactions(r.ctx, 1, 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, tx := range txs.Data {
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
		c.servers = int64(len(r.servers()))
		return c
	}
	nothing := charged{}
	call := func(args map[string]any) (map[string]any, *mcp.CallToolResult) {
		t.Helper()
		res, err := cs.CallTool(r.ctx, &mcp.CallToolParams{Name: "order_server", Arguments: args})
		if err != nil {
			t.Fatalf("order_server %v: %v", args, err)
		}
		if len(res.Content) != 1 {
			t.Fatalf("order_server %v: content %+v", args, res.Content)
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(res.Content[0].(*mcp.TextContent).Text), &m); err != nil {
			t.Fatalf("order_server %v: %v", args, err)
		}
		return m, res
	}
	body := map[string]any{"plan_slug": "vps-t", "label": "mcp-1", "hostname": "mcp-1", "os_template": "base"}

	// 1. Without a token: the quote and a token, nothing charged.
	quote, res := call(map[string]any{"body": body})
	q, _ := quote["quote"].(map[string]any)
	tok, _ := quote["confirmation_token"].(string)
	if res.IsError || quote["confirmation_required"] != true || tok == "" || q["your_monthly_usd_cents"] != float64(price) ||
		q["retail_monthly_usd_cents"] != 1200.0 || q["balance_usd_cents"] != float64(2*price) || q["shortfall_usd_cents"] != 0.0 {
		t.Fatalf("first call: %v", quote)
	}
	if msg, _ := quote["message"].(string); !strings.Contains(msg, "nothing was charged") {
		t.Errorf("the quote's message does not say nothing was charged: %q", quote["message"])
	}
	if got := state(); got != nothing || r.balance() != 2*price {
		t.Fatalf("after the quote: %+v, balance %d; want nothing charged", got, r.balance())
	}

	// 2. Refusals: other arguments with the token, a made-up token; nothing charged.
	other := map[string]any{"plan_slug": "vps-t", "label": "mcp-2", "hostname": "mcp-2", "os_template": "base"}
	if m, res := call(map[string]any{"body": other, "confirmation_token": tok}); !res.IsError || !strings.Contains(m["message"].(string), "arguments differ") {
		t.Fatalf("the token with other arguments: %v", m)
	}
	if m, res := call(map[string]any{"body": body, "confirmation_token": "mcpc_" + strings.Repeat("0", 36)}); !res.IsError || m["code"] != "confirmation_invalid" {
		t.Fatalf("a made-up token: %v", m)
	}
	if got := state(); got != nothing || r.balance() != 2*price {
		t.Fatalf("after refused confirmations: %+v, balance %d; want nothing charged", got, r.balance())
	}

	// 3. The token with the quoted arguments (keys in another order): one order.
	reordered := map[string]any{"os_template": "base", "hostname": "mcp-1", "label": "mcp-1", "plan_slug": "vps-t"}
	o, res := call(map[string]any{"confirmation_token": tok, "body": reordered})
	srv, _ := o["server"].(map[string]any)
	inv, _ := o["invoice"].(map[string]any)
	if res.IsError || srv == nil || srv["hostname"] != "mcp-1" || inv["total_usd_cents"] != float64(price) || inv["status"] != api.InvoicePaid {
		t.Fatalf("confirmed order: %v", o)
	}
	once := charged{payments: 1, paid: price, invoices: 1, servers: 1}
	if got := state(); got != once || r.balance() != price {
		t.Fatalf("after the confirmed order: %+v, balance %d; want %+v, balance %d", got, r.balance(), once, price)
	}

	// 4. The spent token again: refused, still one charge.
	if m, res := call(map[string]any{"body": body, "confirmation_token": tok}); !res.IsError || !strings.Contains(m["message"].(string), "already used") {
		t.Fatalf("the spent token: %v", m)
	}
	if got := state(); got != once || r.balance() != price {
		t.Fatalf("after reusing the token: %+v, balance %d; want %+v", got, r.balance(), once)
	}
}
