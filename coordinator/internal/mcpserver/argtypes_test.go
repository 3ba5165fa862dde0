package mcpserver_test

import (
	"errors"
	"testing"

	"github.com/hostplane/hostplane/coordinator/internal/httpapi"
	"github.com/hostplane/hostplane/coordinator/internal/mcpserver"
)

// TestArgumentTypesInTheRealTools: in the real document's tools, a path,
// query or header argument of another JSON type than its schema's is refused
// naming it, and `body` reaches the operation byte for byte as sent (its
// decoder's rules are a REST client's: `"years": 2.0` is its 400 there as
// here).
func TestArgumentTypesInTheRealTools(t *testing.T) {
	ops, err := mcpserver.OperationsFromDoc(httpapi.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	ts, err := mcpserver.Generate(httpapi.OpenAPI, ops)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ tool, args, body string }{
		{"register_domain", `{"body":{"name":"a.test","years":2.0}}`, `{"name":"a.test","years":2.0}`},
		{"quote_domain", `{"body":{"years" : 20e-1 ,"auto_renew":true}}`, `{"years" : 20e-1 ,"auto_renew":true}`},
		{"power_server", `{"id":"s","action":"stop","body":{"force":true,"grace_seconds":3.0e1}}`, `{"force":true,"grace_seconds":3.0e1}`},
	} {
		call, err := ts.ByName(c.tool).Build([]byte(c.args))
		if err != nil {
			t.Errorf("%s %s: %v", c.tool, c.args, err)
			continue
		}
		if string(call.Body) != c.body {
			t.Errorf("%s %s: body %s; want %s, as sent", c.tool, c.args, call.Body, c.body)
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
