package httpapi

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/brand"
)

// OpenAPI is the OpenAPI 3.0.3 document of the public API, kept in the
// repository, in the canonical (sunucu) names. Other brands serve it renamed
// (BrandOpenAPI).
//
//go:embed openapi.json
var OpenAPI []byte

// serveOpenAPI serves the document on the coordinator called (no
// forwarding), counted as a public route is (limitPublic): against a valid
// key it presents, else against the client address's budget.
func (a *API) serveOpenAPI(w http.ResponseWriter, r *http.Request) {
	rq := &request{Request: r, w: w, now: a.now().UTC(), clientIP: a.clientIP(r)}
	if err := a.limitPublic(rq); err != nil {
		ae, _ := toAPIError(err)
		writeError(w, "", ae)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(a.openapi)
}

// BrandRoutes renames a canonical route table into b's names: each path,
// scope and quote operation. The handlers are the same.
func BrandRoutes(b *brand.Brand, routes []Route) []Route {
	out := make([]Route, len(routes))
	for i, rt := range routes {
		rt.Path = b.Path(rt.Path)
		rt.Scope = b.Scope(rt.Scope)
		if rt.AltScope != "" {
			rt.AltScope = b.Scope(rt.AltScope)
		}
		if rt.Quote != "" {
			rt.Quote = b.Operation(rt.Quote)
		}
		out[i] = rt
	}
	return out
}

// BrandOpenAPI derives b's OpenAPI document from the canonical one: paths,
// operationIds (hence MCP tool names), scopes (x-scope, security
// requirements), x-quote, webhook event names (x-webhook-events and every
// string equal to an event name, e.g. enums) and their payload fields, and
// the brand's names in descriptions. The default brand gets doc unchanged
// (the same bytes).
func BrandOpenAPI(b *brand.Brand, doc []byte) ([]byte, error) {
	if b.IsDefault() {
		return doc, nil
	}
	var d map[string]any
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	if err := dec.Decode(&d); err != nil {
		return nil, err
	}
	prefix := "/v1"
	if servers, _ := d["servers"].([]any); len(servers) > 0 {
		if s0, _ := servers[0].(map[string]any); s0 != nil {
			prefix, _ = s0["url"].(string)
		}
	}
	paths, _ := d["paths"].(map[string]any)
	renamed := make(map[string]any, len(paths))
	for p, item := range paths {
		np := strings.TrimPrefix(b.Path(prefix+p), prefix)
		if _, dup := renamed[np]; dup {
			return nil, fmt.Errorf("openapi: two paths become %s", np)
		}
		renamed[np] = item
		ops, _ := item.(map[string]any)
		for _, o := range ops {
			op, _ := o.(map[string]any)
			if op == nil {
				continue
			}
			if id, ok := op["operationId"].(string); ok {
				op["operationId"] = b.OperationID(id)
			}
			if q, ok := op["x-quote"].(string); ok {
				op["x-quote"] = b.Operation(q)
			}
		}
	}
	d["paths"] = renamed
	if evs, ok := d["x-webhook-events"].([]any); ok {
		for _, e := range evs {
			ev, _ := e.(map[string]any)
			name, _ := ev["name"].(string)
			if fields, ok := ev["payload"].([]any); ok && name != "" {
				var fs []string
				for _, f := range fields {
					s, _ := f.(string)
					fs = append(fs, s)
				}
				out := []any{}
				for _, f := range b.EventFields(name, fs) {
					out = append(out, f)
				}
				ev["payload"] = out
			}
		}
	}
	events := map[string]string{}
	for _, e := range api.WebhookEventNames() {
		events[e] = b.Event(e)
	}
	var walk func(v any, key string) any
	walk = func(v any, key string) any {
		switch x := v.(type) {
		case map[string]any:
			for k, c := range x {
				x[k] = walk(c, k)
			}
			return x
		case []any:
			for i, c := range x {
				x[i] = walk(c, key)
			}
			return x
		case string:
			if to, ok := events[x]; ok {
				return to
			}
			if b.IsScope(b.Scope(x)) && api.IsScope(x) {
				return b.Scope(x)
			}
			switch key {
			case "description", "summary", "title":
				return b.Text(x)
			}
			return x
		}
		return v
	}
	walk(d, "")
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(d); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
