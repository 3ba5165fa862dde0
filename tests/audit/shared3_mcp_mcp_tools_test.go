package audit

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
)

// toolResult is a tools/call answer: the JSON-RPC error, or the result's
// isError, REST status and text.
type toolResult struct {
	rpcErr  map[string]any
	isError bool
	status  float64
	text    string
	raw     string
}

func (m *mcpSession) call(name string, args any) toolResult {
	m.t.Helper()
	resp, out := m.post("tools/call", map[string]any{"name": name, "arguments": args}, false)
	raw, _ := json.Marshal(out)
	tr := toolResult{raw: string(raw)}
	if resp.StatusCode != 200 {
		tr.raw = fmt.Sprintf("HTTP %d", resp.StatusCode)
		tr.status, tr.isError = float64(resp.StatusCode), true
		return tr
	}
	tr.rpcErr, _ = out["error"].(map[string]any)
	res, _ := out["result"].(map[string]any)
	if res != nil {
		tr.isError, _ = res["isError"].(bool)
		meta, _ := res["_meta"].(map[string]any)
		tr.status, _ = meta["hostplane/status"].(float64)
		cs, _ := res["content"].([]any)
		for _, c := range cs {
			if tc, _ := c.(map[string]any); tc["type"] == "text" {
				s, _ := tc["text"].(string)
				tr.text += s
			}
		}
	}
	return tr
}

// leadershipChange is the code of a tool call answered 503 while the
// cluster changes leader (no_leader, leader_unreachable: sent again after
// Retry-After, as on REST), else "".
func (tr toolResult) leadershipChange() string {
	var e struct {
		Code string `json:"code"`
	}
	if !tr.isError || tr.status != 503 || json.Unmarshal([]byte(tr.text), &e) != nil || e.Code != "no_leader" && e.Code != "leader_unreachable" {
		return ""
	}
	return e.Code
}

// refused is a tool call that did nothing: a JSON-RPC error, or a tool
// error with a 4xx REST status.
func (tr toolResult) refused() bool {
	return tr.rpcErr != nil || tr.isError && tr.status >= 400 && tr.status < 500
}

// TestMCPToolArgumentsHostile: tool arguments a hostile client crafts,
// through a follower (the call is forwarded to the leader): an id that walks
// out of its path ("../account", encoded slashes, a query, a fragment) never
// reaches another route, and shows nothing of the account (neither A's
// own other data nor B's); wrong types, huge strings and header values with
// line breaks are tool errors with a 4xx, never a 5xx or a result; secrets
// (a webhook's) appear in a tool answer only where REST shows them once;
// tools/list offers only /openapi.json's operations.
func TestMCPToolArgumentsHostile(t *testing.T) {
	r := sharedMCPRig(t, "mcp")
	f := r.follower()
	var tk api.Ticket
	if rep := r.write(0, r.keyA, "POST", "/v1/tickets", api.TicketCreateRequest{Subject: "A's", Message: "mine"}); rep.Status != 201 {
		t.Fatalf("ticket: %s", rep)
	} else {
		rep.Decode(t, &tk)
	}
	var bt api.Ticket
	r.write(0, r.keyB, "POST", "/v1/tickets", api.TicketCreateRequest{Subject: "B's", Message: "theirs"}).Decode(t, &bt)
	m := &mcpSession{t: t, endpoint: r.c.URL(f) + "/mcp", token: r.keyA}
	m.initialize()

	// What must never show: the account's own record (another route) and
	// B's ticket.
	secret := []string{r.accA.Email, r.accB.ID, bt.ID, "theirs"}
	shows := func(what string, tr toolResult) {
		t.Helper()
		for _, s := range secret {
			if strings.Contains(tr.raw, s) {
				t.Errorf("%s shows %q: %.400s", what, s, tr.raw)
			}
		}
	}
	for _, id := range []string{"../account", "../../v1/account", "x/../../account", "..%2f..%2faccount", "..%2Faccount", "%2e%2e/account",
		"%2e%2e%2faccount", "..\\account", tk.ID + "?x=1", tk.ID + "#x", tk.ID + "/../../account", tk.ID + "%00", "../tickets/" + bt.ID, "..%2f" + bt.ID,
		"", " ", "\x00", "\r\nX-API-Key: " + r.keyB, strings.Repeat("a", 900_000)} {
		tr := m.call("get_ticket", map[string]any{"id": id})
		shows(fmt.Sprintf("get_ticket id %.40q", id), tr)
		if !tr.refused() {
			t.Errorf("get_ticket id %.40q: %.300s; want a 4xx tool error or a JSON-RPC error", id, tr.raw)
		}
	}
	// reply_ticket's id walking onto B's ticket: nothing posted there.
	for _, id := range []string{"../tickets/" + bt.ID, tk.ID + "/../" + bt.ID, "..%2F" + bt.ID} {
		tr := m.call("reply_ticket", map[string]any{"id": id, "body": map[string]any{"body": "hostile"}})
		shows("reply_ticket id "+id, tr)
		if !tr.refused() {
			t.Errorf("reply_ticket id %q: %.300s; want refused", id, tr.raw)
		}
	}
	var bv api.Ticket
	r.call(0, r.keyB, "GET", "/v1/tickets/"+bt.ID, nil, nil).Decode(t, &bv)
	if len(bv.Messages) != 1 {
		t.Errorf("B's ticket after A's hostile replies: %d messages", len(bv.Messages))
	}

	// Wrong types and values.
	for name, args := range map[string]map[string]any{
		"id number":          {"id": 123},
		"id bool":            {"id": true},
		"id null":            {"id": nil},
		"id array":           {"id": []string{tk.ID}},
		"id object":          {"id": map[string]any{"$ne": ""}},
		"no id":              {},
		"unknown argument":   {"id": tk.ID, "account_id": r.accB.ID, "as_admin": true},
		"body string":        {"id": tk.ID, "body": "x"},
		"huge unknown value": {"id": tk.ID, "x": strings.Repeat("b", 500_000)},
	} {
		tr := m.call("get_ticket", args)
		shows("get_ticket "+name, tr)
		if tr.status >= 500 || tr.rpcErr == nil && !tr.isError && name != "unknown argument" && name != "body string" && name != "huge unknown value" {
			t.Errorf("get_ticket %s: %.300s; want refused", name, tr.raw)
		}
		if name == "unknown argument" && !tr.refused() && !strings.Contains(tr.text, tk.ID) {
			t.Errorf("get_ticket with extra arguments: %.300s", tr.raw)
		}
	}
	for name, args := range map[string]map[string]any{
		"limit string":   {"limit": "abc"},
		"limit negative": {"limit": -1},
		"limit huge":     {"limit": 1e12},
		"limit float":    {"limit": 1.5},
		"page zero":      {"page": 0},
	} {
		tr := m.call("list_tickets", args)
		shows("list_tickets "+name, tr)
		if !tr.refused() {
			t.Errorf("list_tickets %s: %.300s; want a 4xx", name, tr.raw)
		}
	}
	before := 0
	var tl struct {
		Total int `json:"total"`
	}
	r.call(0, r.keyA, "GET", "/v1/tickets", nil, nil).Decode(t, &tl)
	before = tl.Total
	for name, args := range map[string]map[string]any{
		"body array":            {"body": []any{1}},
		"body string":           {"body": "subject=x"},
		"body unknown field":    {"body": map[string]any{"subject": "s", "message": "m", "account_id": r.accB.ID}},
		"idempotency key CRLF":  {"body": map[string]any{"subject": "s", "message": "m"}, "idempotency_key": "k\r\nX-API-Key: " + r.keyB},
		"idempotency key 100KB": {"body": map[string]any{"subject": "s", "message": "m"}, "idempotency_key": strings.Repeat("k", 100_000)},
		"subject 900KB":         {"body": map[string]any{"subject": strings.Repeat("s", 900_000), "message": "m"}},
		"body over 1 MiB":       {"body": map[string]any{"subject": "s", "message": strings.Repeat("m", 1<<20+1)}},
	} {
		tr := m.call("create_ticket", args)
		shows("create_ticket "+name, tr)
		if !tr.refused() {
			t.Errorf("create_ticket %s: %.300s; want a 4xx", name, tr.raw)
		}
	}
	r.call(0, r.keyA, "GET", "/v1/tickets", nil, nil).Decode(t, &tl)
	if tl.Total != before {
		t.Errorf("refused create_ticket calls made %d tickets", tl.Total-before)
	}
	r.call(0, r.keyB, "GET", "/v1/tickets", nil, nil).Decode(t, &tl)
	if tl.Total != 1 {
		t.Errorf("B has %d tickets after A's hostile calls; want 1", tl.Total)
	}

	// A webhook's secret: once in the create answer, masked after, as REST.
	rc := newReceiver(t)
	tr := m.call("create_webhook", map[string]any{"body": map[string]any{"url": rc.URL, "events": []string{"*"}}})
	var wh struct {
		ID     string `json:"id"`
		Secret string `json:"secret"`
	}
	if json.Unmarshal([]byte(tr.text), &wh) != nil || !strings.HasPrefix(wh.Secret, "whsec_") {
		t.Fatalf("create_webhook: %.300s", tr.raw)
	}
	for _, c := range []struct {
		name string
		args map[string]any
	}{{"get_webhook", map[string]any{"id": wh.ID}}, {"list_webhooks", map[string]any{}}, {"list_webhook_deliveries", map[string]any{"id": wh.ID}}} {
		if tr := m.call(c.name, c.args); tr.isError || strings.Contains(tr.raw, wh.Secret) || strings.Contains(tr.raw, wh.Secret[6:]) {
			t.Errorf("%s: %.300s; want an answer without the secret", c.name, tr.raw)
		}
	}

	// Every tool is an operation of /openapi.json.
	ops := map[string]bool{}
	for _, op := range r.operations() {
		if op.OperationID != "" {
			ops[strings.ToLower(op.OperationID)] = true
		}
	}
	_, out := m.post("tools/list", map[string]any{}, false)
	res, _ := out["result"].(map[string]any)
	tools, _ := res["tools"].([]any)
	if len(tools) < 40 {
		t.Fatalf("tools/list: %d tools", len(tools))
	}
	for _, tl := range tools {
		name, _ := tl.(map[string]any)["name"].(string)
		if !ops[strings.ReplaceAll(name, "_", "")] {
			t.Errorf("tools/list offers %q, no operation of /openapi.json", name)
		}
	}
	_ = time.Second
}
