package audit

import (
	"encoding/json"
	"sync"
	"testing"
)

// TestMCPOrderConfirmation: an order through MCP (README: a quote and a
// confirmation_token first, the order only on a second call with the token
// and the same arguments) as a hostile or careless client tries it, through
// a follower: the first call charges nothing; the token does not work for
// another account, with other arguments, or on another coordinator; the
// right call sent three times at once (a client retrying) orders and charges
// once; the same call after that (a client whose answer was lost) is
// answered the same order and charges nothing more.
func TestMCPOrderConfirmation(t *testing.T) {
	r := sharedRig(t, "audit")
	r.c.Credit(r.ctx, r.accA.ID, 3*serverPrice)
	f := r.follower()
	ep := r.c.URL(f) + "/mcp"
	a := &mcpSession{t: t, endpoint: ep, token: r.keyA}
	a.initialize()
	before, beforeB := r.charged(r.keyA), r.charged(r.keyB)
	args := map[string]any{"body": serverBody("mcp-1")}
	q := a.call("order_server", args)
	var quote struct {
		Required bool   `json:"confirmation_required"`
		Token    string `json:"confirmation_token"`
	}
	if json.Unmarshal([]byte(q.text), &quote) != nil || !quote.Required || quote.Token == "" || q.isError {
		t.Fatalf("order_server without a token: %.400s; want a quote and a confirmation_token", q.raw)
	}
	if got := r.charged(r.keyA); got != before {
		t.Fatalf("the quote charged A: %+v → %+v", before, got)
	}
	with := func(body map[string]any) map[string]any {
		return map[string]any{"body": body, "confirmation_token": quote.Token}
	}
	// B with A's token (B has no money: a 402 would mean it was honoured).
	b := &mcpSession{t: t, endpoint: ep, token: r.keyB}
	b.initialize()
	if tr := b.call("order_server", with(serverBody("mcp-1"))); !tr.refused() || tr.status == 402 || tr.status == 201 {
		t.Errorf("B with A's confirmation_token: %.300s; want refused as an unknown token", tr.raw)
	}
	// Other arguments, and another coordinator.
	if tr := a.call("order_server", with(serverBody("mcp-2"))); !tr.refused() {
		t.Errorf("A's token with another label: %.300s; want refused", tr.raw)
	}
	// The refusals above spent it (a token is good once, for its arguments).
	q = a.call("order_server", args)
	if json.Unmarshal([]byte(q.text), &quote) != nil || quote.Token == "" {
		t.Fatalf("a second quote: %.300s", q.raw)
	}
	other := &mcpSession{t: t, endpoint: r.c.URL((f+1)%3) + "/mcp", token: r.keyA}
	other.initialize()
	if tr := other.call("order_server", with(serverBody("mcp-1"))); !tr.refused() {
		t.Errorf("A's token on another coordinator: %.300s; want refused (tokens live where they were issued)", tr.raw)
	}
	if got := r.charged(r.keyA); got != before {
		t.Fatalf("refused confirmations charged A: %+v → %+v", before, got)
	}
	q = a.call("order_server", args)
	if json.Unmarshal([]byte(q.text), &quote) != nil || quote.Token == "" {
		t.Fatalf("a third quote: %.300s", q.raw)
	}
	// Three at once, each on its own session of A.
	var wg sync.WaitGroup
	results := make([]toolResult, 3)
	sessions := make([]*mcpSession, 3)
	for i := range sessions {
		sessions[i] = &mcpSession{t: t, endpoint: ep, token: r.keyA}
		sessions[i].initialize()
	}
	for i := range 3 {
		wg.Go(func() {
			results[i] = sessions[i].call("order_server", with(serverBody("mcp-1")))
		})
	}
	wg.Wait()
	// Each answer is the order (the same one: a replay) or a refusal.
	ids := map[string]bool{}
	for _, tr := range results {
		var o struct {
			Server struct {
				ID string `json:"id"`
			} `json:"server"`
		}
		if !tr.isError && tr.rpcErr == nil && json.Unmarshal([]byte(tr.text), &o) == nil && o.Server.ID != "" {
			ids[o.Server.ID] = true
		} else if !tr.refused() {
			t.Errorf("a concurrent confirmation: %.300s", tr.raw)
		}
	}
	after := r.charged(r.keyA)
	if len(ids) != 1 || after.servers != before.servers+1 || after.balance != before.balance-serverPrice || after.invoices != before.invoices+1 {
		t.Errorf("three concurrent confirmations: servers %v; A %+v → %+v; want one server, one charge", ids, before, after)
	}
	again := a.call("order_server", with(serverBody("mcp-1")))
	var o struct {
		Server struct {
			ID string `json:"id"`
		} `json:"server"`
	}
	if again.isError || again.rpcErr != nil || json.Unmarshal([]byte(again.text), &o) != nil || !ids[o.Server.ID] {
		t.Errorf("the confirmation sent again: %.300s; want the order made (%v) replayed", again.raw, ids)
	}
	if got := r.charged(r.keyA); got != after {
		t.Errorf("the spent token charged again: %+v → %+v", after, got)
	}
	if got := r.charged(r.keyB); got != beforeB {
		t.Errorf("B's account changed: %+v → %+v", beforeB, got)
	}
}
