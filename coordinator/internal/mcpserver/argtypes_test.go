package mcpserver_test

import (
	"errors"
	"testing"

	"github.com/hostplane/hostplane/coordinator/internal/httpapi"
	"github.com/hostplane/hostplane/coordinator/internal/mcpserver"
)

// TestBodyIntegersAsTheirSchemaSays: in the real document's tools, a body
// member whose schema is an integer, written as a number with a zero
// fractional part (2.0, 20e-1: an integer in JSON Schema), reaches the
// operation written as the integer, so its decoder takes it as it takes 2;
// every other byte of the body is as sent (a string "2.0", a member the
// schema types otherwise, 2.5 and 1e400, which the decoder refuses naming
// the field).
func TestBodyIntegersAsTheirSchemaSays(t *testing.T) {
	ops, err := mcpserver.OperationsFromDoc(httpapi.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	ts, err := mcpserver.Generate(httpapi.OpenAPI, ops)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ tool, args, body string }{
		{"register_domain", `{"body":{"name":"a.test","years":2.0}}`, `{"name":"a.test","years":2}`},
		{"register_domain", `{"body":{"name":"2.0e1","years" : 20e-1 ,"auto_renew":true}}`, `{"name":"2.0e1","years" : 2 ,"auto_renew":true}`},
		{"quote_domain", `{"body":{"years":-0.0}}`, `{"years":0}`},
		{"quote_domain", `{"body":{"years":2.5}}`, `{"years":2.5}`},
		{"quote_domain", `{"body":{"years":1e400}}`, `{"years":1e400}`},
		{"quote_domain", `{"body":{"years":"2.0"}}`, `{"years":"2.0"}`},
		{"quote_domain", `{"body":{"years":2.0,"years":3.0}}`, `{"years":2,"years":3}`}, // still the decoder's duplicate
		{"power_server", `{"id":"s","action":"stop","body":{"force":true,"grace_seconds":3.0e1}}`, `{"force":true,"grace_seconds":30}`},
		{"create_ticket", `{"body":{"subject":"1.0","body":"2.0","priority":"high"}}`, `{"subject":"1.0","body":"2.0","priority":"high"}`},
	} {
		call, err := ts.ByName(c.tool).Build([]byte(c.args))
		if err != nil {
			t.Errorf("%s %s: %v", c.tool, c.args, err)
			continue
		}
		if string(call.Body) != c.body {
			t.Errorf("%s %s: body %s; want %s", c.tool, c.args, call.Body, c.body)
		}
	}
	for _, c := range []struct{ tool, args, field string }{
		{"list_tickets", `{"limit":"5"}`, "limit"},
		{"list_tickets", `{"page":2.5}`, "page"},
		{"list_tickets", `{"consistency":1}`, "consistency"},
		{"get_server_stats", `{"id":"s","interval":"5"}`, "interval"},
		{"power_server", `{"id":"s","action":false}`, "action"},
		{"get_server", `{"id":7}`, "id"},
	} {
		_, err := ts.ByName(c.tool).Build([]byte(c.args))
		var ae *mcpserver.ArgError
		if !errors.As(err, &ae) || ae.Field != c.field {
			t.Errorf("%s %s: %v; want a refusal naming %s", c.tool, c.args, err, c.field)
		}
	}
}
