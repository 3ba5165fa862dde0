package audit

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// TestProbe57MCPArgumentsTakeTheirSchemaTypes: an MCP tool's path, query and
// header arguments are the JSON type their inputSchema names, through every
// coordinator: a string where the schema says integer (`limit: "5"`), a
// boolean, or a non-integral number (2.5) is refused, a tool error naming the
// argument, and nothing is dispatched (a path id that names nothing is not
// looked up: the answer is the argument's 400, not a 404); a number or
// boolean where the schema says string (an enum's `consistency: 1`) is
// refused alike. `body` follows the REST body's one rule: register_domain and
// quote_domain answer a body with `years` written 2, 2.0, 20e-1, "2", 2.5 or
// true as POST /v1/domains/quote answers it (a quote for 2; the same 400
// naming years for the rest).
//
// Before, a query argument went to the operation as its text whatever its
// JSON type (`limit: "5"` listed 5, `consistency: true` was read as "true").
func TestProbe57MCPArgumentsTakeTheirSchemaTypes(t *testing.T) {
	r := sharedRig(t, "probe57mcp")
	for i := range r.c.Len() {
		s := newProbe56MCP(t, r.c.URL(i)+"/mcp", r.keyA)
		list := s.tools(t)
		ints, strs := 0, 0
		for _, tool := range list.Tools {
			base := map[string]any{}
			for _, req := range tool.InputSchema.Required {
				if req == "body" {
					base[req] = map[string]any{}
				} else {
					base[req] = "probe57-none"
				}
			}
			for arg, p := range tool.InputSchema.Properties {
				var wrong []any
				switch {
				case p.Type == "integer":
					ints++
					wrong = []any{"2", true, 2.5}
				case p.Type == "string" && len(p.Enum) > 0:
					strs++
					wrong = []any{1, false}
				default:
					continue
				}
				for _, v := range wrong {
					args := map[string]any{}
					for k, x := range base {
						args[k] = x
					}
					args[arg] = v
					raw, _ := json.Marshal(args)
					res := s.tool(t, tool.Name, string(raw))
					if !res.IsError || !strings.Contains(res.text(), `"statusCode":400`) || !strings.Contains(res.text(), fmt.Sprintf("%q", arg)) && !strings.Contains(res.text(), `\"`+arg+`\"`) {
						t.Errorf("coordinator %d: %s %s: %.300s; want a 400 naming %s (its inputSchema says %v)", i, tool.Name, raw, res.text(), arg, p.Type)
					}
				}
			}
		}
		if ints < 10 || strs < 10 {
			t.Errorf("coordinator %d: %d integer and %d enum arguments tried; want the list tools' limit and page and every consistency", i, ints, strs)
		}

		// Inside the body: the domain order and its quote answer what
		// REST answers the same body (its one decoder).
		name := fmt.Sprintf("probe57-years-%d.test", i)
		for _, years := range []string{"2", "2.0", "20e-1", `"2"`, "2.5", "true"} {
			body := strings.Replace(mustJSON(t, domainBody(name)), `"years":1`, `"years":`+years, 1)
			rest := r.call(i, r.keyA, "POST", "/v1/domains/quote", json.RawMessage(body), nil)
			for _, tool := range []string{"quote_domain", "register_domain"} {
				res := s.tool(t, tool, `{"body":`+body+`}`)
				var got struct {
					StatusCode int    `json:"statusCode"`
					Code       string `json:"code"`
					Message    string `json:"message"`
					Years      int    `json:"years"`
					Quote      *struct {
						Years int `json:"years"`
					} `json:"quote"`
				}
				_ = json.Unmarshal([]byte(res.text()), &got)
				if got.Quote != nil {
					got.Years = got.Quote.Years
				}
				switch {
				case rest.Status == 200 && (res.IsError || got.Years != 2):
					t.Errorf("coordinator %d: %s with years %s: %.300s; REST quotes it (%s), want a quote of 2 years", i, tool, years, res.text(), rest)
				case rest.Status != 200 && (!res.IsError || got.StatusCode != rest.Status || got.Code != rest.Code() || !strings.Contains(got.Message, "years")):
					t.Errorf("coordinator %d: %s with years %s: %.300s; want REST's answer to the same body: %s", i, tool, years, res.text(), rest)
				}
			}
			if (years == "2") != (rest.Status == 200) {
				t.Errorf("coordinator %d: REST quote with years %s: %s", i, years, rest)
			}
		}
	}
	if c := r.charged(r.keyA); c != (charged{}) {
		t.Errorf("account A after quotes and refusals: %+v; want no invoice, domain or balance change", c)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
