package mcpserver_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/hostplane/hostplane/pkg/api"
)

// TestMCPTransferDomainQuote: transfer_domain asks POST
// /v1/domains/transfer/quote before it hands out a confirmation token, as
// register_domain asks its quote. A body the transfer refuses (a missing or
// spaced auth code, a name under no offered TLD, one the registry does not
// know) is answered the REST refusal naming the field, with no token; a
// good body gets a token and the quote (one year at 1000), nothing charged;
// the confirmation then transfers and charges what was quoted. Before, the
// route had no quote and every body got a token.
func TestMCPTransferDomainQuote(t *testing.T) {
	r := newOrderRig(t, "mcp60-transfer@example.com", 1500, api.ScopeDomainsRead, api.ScopeOrdersWrite)
	c, key := r.c, r.key
	balance := func() int64 { return r.balance(t) }
	contact := orderContact
	body := func(name, code string) map[string]any {
		return map[string]any{"name": name, "auth_code": code, "contact": contact}
	}
	cs := mcpClient(t, c, key)
	type answer struct {
		StatusCode int    `json:"statusCode"`
		Code       string `json:"code"`
		Message    string `json:"message"`
		Token      string `json:"confirmation_token"`
		Quote      *struct {
			Name            string `json:"name"`
			Years           int    `json:"years"`
			TotalUsdCents   int64  `json:"total_usd_cents"`
			BalanceUsdCents int64  `json:"balance_usd_cents"`
		} `json:"quote"`
	}
	call := func(args map[string]any) (answer, bool) {
		t.Helper()
		res := callTool(t, cs, "transfer_domain", args)
		var a answer
		if err := json.Unmarshal([]byte(resultText(t, res)), &a); err != nil {
			t.Fatalf("transfer_domain %v: %v: %s", args, err, resultText(t, res))
		}
		return a, res.IsError
	}
	for _, c := range []struct {
		body        map[string]any
		status      int
		code, field string
	}{
		{body("moved.test", ""), 400, "invalid_field", `"auth_code"`},
		{body("moved.test", "a b"), 400, "invalid_field", `"auth_code"`},
		{body("moved.example", "x1"), 400, "invalid_field", `"name"`},
		{map[string]any{"name": "moved.test", "auth_code": "x1"}, 400, "invalid_field", `"contact.name"`},
		{body("nowhere.test", "x1"), 409, "domain_not_registered", "nowhere.test"},
	} {
		a, isErr := call(map[string]any{"body": c.body})
		if !isErr || a.Token != "" || a.StatusCode != c.status || a.Code != c.code || !strings.Contains(a.Message, c.field) {
			t.Errorf("transfer_domain %v: error %v %+v; want the %d %s naming %s and no confirmation_token", c.body, isErr, a, c.status, c.code, c.field)
		}
	}
	if b := balance(); b != 1500 {
		t.Fatalf("balance %d after refused bodies", b)
	}
	good := map[string]any{"body": body("moved.test", "s3cret-Code-42"), "idempotency_key": "mcp60-transfer-1"}
	a, isErr := call(good)
	if isErr || a.Token == "" || a.Quote == nil || a.Quote.Name != "moved.test" || a.Quote.Years != 1 || a.Quote.TotalUsdCents != 1000 || a.Quote.BalanceUsdCents != 1500 {
		t.Fatalf("transfer_domain with a good body: error %v %+v; want a confirmation_token and the quote of 1 year at 1000", isErr, a)
	}
	if b := balance(); b != 1500 {
		t.Fatalf("balance %d after the quote; nothing is charged before the confirmation", b)
	}
	good["confirmation_token"] = a.Token
	res := callTool(t, cs, "transfer_domain", good)
	var d api.Domain
	if res.IsError || json.Unmarshal([]byte(resultText(t, res)), &d) != nil || d.Name != "moved.test" {
		t.Fatalf("confirmed transfer: %s", resultText(t, res))
	}
	if b := balance(); b != 1500-a.Quote.TotalUsdCents {
		t.Fatalf("balance %d after the transfer; the quote said %d of 1500", b, a.Quote.TotalUsdCents)
	}
}
