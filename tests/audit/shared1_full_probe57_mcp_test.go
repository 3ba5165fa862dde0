package audit

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// TestProbe57MCPArgumentsTakeTheirSchemaTypes: an MCP tool argument is the
// JSON value its inputSchema types it as, wherever it sits (a query or path
// parameter, or a member of `body`), through every coordinator:
//   - an integer is a JSON integer, and 2.0 is one (JSON Schema): `years: 2.0`
//     in register_domain's and quote_domain's body is priced and quoted as 2
//     years, as `limit: 2.0` lists a page of 2 (probe56);
//   - a string where the schema says integer (`limit: "5"`, `years: "2"`), a
//     boolean, or a non-integral number (2.5) is refused, a tool error naming
//     the argument, and nothing is dispatched (a path id that names nothing is
//     not looked up: the answer is the argument's 400, not a 404);
//   - a number or boolean where the schema says string (an enum's
//     `consistency: 1`) is refused alike.
//
// Before, a query argument went to the operation as its text whatever its
// JSON type (`limit: "5"` listed 5, `consistency: true` was read as "true"),
// and a body's 2.0 was the REST decoder's 400 ("must be an integer"), though
// the same tool took `limit: 2.0`.
func TestProbe57MCPArgumentsTakeTheirSchemaTypes(t *testing.T) {
	r := sharedRig(t, "probe57mcp")
	for i := range r.c.Len() {
		s := newProbe56MCP(t, r.c.URL(i)+"/mcp", r.keyA)
		var list struct {
			Tools []struct {
				Name        string `json:"name"`
				InputSchema struct {
					Properties map[string]struct {
						Type any   `json:"type"`
						Enum []any `json:"enum"`
					} `json:"properties"`
					Required []string `json:"required"`
				} `json:"inputSchema"`
			} `json:"tools"`
		}
		s.call(t, "tools/list", map[string]any{}, &list)
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

		// Inside the body: the domain order and its quote.
		name := fmt.Sprintf("probe57-years-%d.test", i)
		for _, tool := range []string{"quote_domain", "register_domain"} {
			for _, years := range []string{"2", "2.0", "20e-1"} {
				body := strings.Replace(mustJSON(t, domainBody(name)), `"years":1`, `"years":`+years, 1)
				res := s.tool(t, tool, `{"body":`+body+`}`)
				var got struct {
					Years int `json:"years"`
					Total int `json:"total_usd_cents"`
					Quote *struct {
						Years int `json:"years"`
						Total int `json:"total_usd_cents"`
					} `json:"quote"`
				}
				_ = json.Unmarshal([]byte(res.text()), &got)
				if got.Quote != nil {
					got.Years, got.Total = got.Quote.Years, got.Quote.Total
				}
				if res.IsError || got.Years != 2 || got.Total != 2*domainPrice {
					t.Errorf("coordinator %d: %s with years %s (an integer, as its inputSchema says): %.300s; want a quote of 2 years at %d", i, tool, years, res.text(), 2*domainPrice)
				}
			}
			for _, years := range []string{`"2"`, "2.5", "true"} {
				body := strings.Replace(mustJSON(t, domainBody(name)), `"years":1`, `"years":`+years, 1)
				if res := s.tool(t, tool, `{"body":`+body+`}`); !res.IsError || !strings.Contains(res.text(), "years") || !strings.Contains(res.text(), `"statusCode":400`) {
					t.Errorf("coordinator %d: %s with years %s: %.300s; want a 400 naming years", i, tool, years, res.text())
				}
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
