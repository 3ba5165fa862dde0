// Package mcpserver serves hostplane's public API as Model Context Protocol
// tools: one tool per public operation, generated from the route table and the
// OpenAPI document that serve the REST API, each call dispatched as the same
// HTTP request a REST client would send (so scopes, rate limits, idempotency,
// audit and errors are the REST path's own).
package mcpserver

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"unicode"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/hostplane/hostplane/internal/memo"
	"github.com/hostplane/hostplane/internal/openapidoc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Operation is one public operation as the route table describes it.
type Operation struct {
	Method     string // GET, POST, …
	Path       string // served path pattern, e.g. /v1/tickets/{id}
	Scope      string // the scope the operation needs
	AltScope   string // a scope that serves instead of Scope ("" for none)
	Idempotent bool   // honours Idempotency-Key
	// SpendsMoney asks for a double confirmation: a quote and a token first,
	// the operation only on a second call that presents the token.
	SpendsMoney bool
	// Quote is the operation ("METHOD /path") that prices the same input.
	Quote string
}

// Key is "METHOD /path".
func (o Operation) Key() string { return o.Method + " " + o.Path }

// ReadOnly: a GET changes nothing.
func (o Operation) ReadOnly() bool { return o.Method == http.MethodGet }

// Destructive is the stable rule behind destructiveHint: a DELETE, or an
// operation that needs a *:destroy scope (terminate, reinstall, revert).
func (o Operation) Destructive() bool {
	return o.Method == http.MethodDelete || strings.HasSuffix(o.Scope, ":destroy")
}

// Argument names a tool adds beside the operation's parameters.
const (
	argBody         = "body"
	argConfirmation = "confirmation_token"
)

// param is one OpenAPI parameter as a tool argument.
type param struct {
	name string // the argument's name
	wire string // the parameter's name on the wire
	// placeholder is the path parameter's "{wire}" in the path pattern.
	placeholder string
	in          string // path, query or header
	req         bool
	// kind is the JSON type the parameter's schema names (integer,
	// number, boolean, string; "" for none or several): the type its
	// argument must be (argText).
	kind string
}

// Tool is one generated tool: its MCP definition and how a call becomes the
// operation's HTTP request.
type Tool struct {
	Def      *mcp.Tool
	Op       Operation
	route    string // Op.Key()
	params   []param
	argNames map[string]bool
	names    []string // argNames, sorted
	hasBody  bool
	bodyReq  bool
}

// Tools is the generated tool table.
type Tools struct {
	List  []*Tool
	byOp  map[string]*Tool
	byKey map[string]*Tool
}

// ByName returns the tool called name.
func (ts *Tools) ByName(name string) *Tool { return ts.byKey[name] }

// ByOperation returns the tool of "METHOD /path".
func (ts *Tools) ByOperation(key string) *Tool { return ts.byOp[key] }

// Generate builds one tool per operation from the OpenAPI document doc: the
// name from operationId (snake_case), title and description from summary and
// description, the input schema from the path, query and header parameters
// plus the JSON request body (as `body`), the output schema from the JSON
// schema of the success response when it is an object. Every operation must
// be documented; a parameter marked `x-mcp-omit` (one that switches the
// answer to a stream, which a tool call cannot return) is left out.
//
// The table is built once per document and operations and shared (only
// read) by every server given the same: a process serves one, but tests start
// many in-process coordinators, and the build took ≈ 1 s under -race.
func Generate(doc []byte, ops []Operation) (*Tools, error) {
	h := sha256.New()
	h.Write(doc)
	for _, op := range ops {
		fmt.Fprintf(h, "%#v\n", op) // every field (strings and bools: no addresses)
	}
	return generated.Get(string(h.Sum(nil)), func() (*Tools, error) {
		return generate(doc, ops)
	})
}

var generated memo.Cache[string, *Tools] // by the sha256 of a document and operations

func generate(doc []byte, ops []Operation) (*Tools, error) {
	d, err := openapidoc.Load(doc) // shared with httpapi's query parameters
	if err != nil {
		return nil, fmt.Errorf("openapi: %w", err)
	}
	if err := d.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("openapi: %w", err)
	}
	prefix := ""
	if len(d.Servers) > 0 {
		prefix = strings.TrimSuffix(d.Servers[0].URL, "/")
	}
	ts := &Tools{byOp: map[string]*Tool{}, byKey: map[string]*Tool{}}
	for _, op := range ops {
		docPath := strings.TrimPrefix(op.Path, prefix)
		item := d.Paths.Value(docPath)
		if item == nil || item.GetOperation(op.Method) == nil {
			return nil, fmt.Errorf("%s: not in the OpenAPI document (as %s %s)", op.Key(), op.Method, docPath)
		}
		t, err := newTool(op, item, item.GetOperation(op.Method))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op.Key(), err)
		}
		if other := ts.byKey[t.Def.Name]; other != nil {
			return nil, fmt.Errorf("tool name %q of %s is also %s's", t.Def.Name, op.Key(), other.Op.Key())
		}
		ts.byKey[t.Def.Name] = t
		ts.byOp[op.Key()] = t
		ts.List = append(ts.List, t)
	}
	for _, t := range ts.List {
		if q := t.Op.Quote; q != "" && ts.byOp[q] == nil {
			return nil, fmt.Errorf("%s: quote operation %q is not a route", t.Op.Key(), q)
		}
	}
	sort.Slice(ts.List, func(i, j int) bool { return ts.List[i].Def.Name < ts.List[j].Def.Name })
	return ts, nil
}

var toolNameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,128}$`)

func newTool(op Operation, item *openapi3.PathItem, o *openapi3.Operation) (*Tool, error) {
	name := ToolName(op, o.OperationID)
	if !toolNameRE.MatchString(name) {
		return nil, fmt.Errorf("tool name %q is not valid", name)
	}
	t := &Tool{Op: op, route: op.Key(), argNames: map[string]bool{}}
	props := map[string]any{}
	var required []string
	add := func(name string, schema map[string]any, req bool) error {
		if t.argNames[name] {
			return fmt.Errorf("two arguments named %q", name)
		}
		t.argNames[name] = true
		props[name] = schema
		if req {
			required = append(required, name)
		}
		return nil
	}
	// Path-level parameters first, overridden by the operation's own.
	params := map[string]*openapi3.Parameter{}
	var order []string
	for _, list := range []openapi3.Parameters{item.Parameters, o.Parameters} {
		for _, pr := range list {
			p := pr.Value
			if p == nil {
				continue
			}
			k := p.In + ":" + p.Name
			if _, seen := params[k]; !seen {
				order = append(order, k)
			}
			params[k] = p
		}
	}
	for _, k := range order {
		p := params[k]
		if p.In == "cookie" {
			continue
		}
		if omit, _ := p.Extensions["x-mcp-omit"].(bool); omit {
			continue
		}
		an := p.Name
		if p.In == "header" {
			an = snake(strings.ReplaceAll(p.Name, "-", "_"))
		}
		schema := jsonSchema(p.Schema)
		if p.Description != "" {
			schema["description"] = p.Description
		}
		req := p.Required || p.In == "path"
		if err := add(an, schema, req); err != nil {
			return nil, err
		}
		t.params = append(t.params, param{name: an, wire: p.Name, placeholder: "{" + p.Name + "}", in: p.In, req: req, kind: schemaKind(schema)})
	}
	if rb := o.RequestBody; rb != nil && rb.Value != nil {
		if mt := rb.Value.Content.Get("application/json"); mt != nil {
			schema := jsonSchema(mt.Schema)
			if schema["description"] == nil && rb.Value.Description != "" {
				schema["description"] = rb.Value.Description
			}
			t.hasBody, t.bodyReq = true, rb.Value.Required
			if err := add(argBody, schema, rb.Value.Required); err != nil {
				return nil, err
			}
		}
	}
	if op.SpendsMoney {
		if err := add(argConfirmation, map[string]any{
			"type":        "string",
			"description": "Leave out on the first call, which only answers a quote and this token; pass it back, with the same arguments, once the user has approved the quote, to run the order.",
		}, false); err != nil {
			return nil, err
		}
	}
	for n := range t.argNames {
		t.names = append(t.names, n)
	}
	sort.Strings(t.names)
	in := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
	if len(required) > 0 {
		in["required"] = required
	}
	def := &mcp.Tool{
		Name:        name,
		Title:       o.Summary,
		Description: describe(op, o),
		InputSchema: in,
	}
	if out := outputSchema(o); out != nil && !op.SpendsMoney {
		def.OutputSchema = out
	}
	ro, destructive, closed := op.ReadOnly(), op.Destructive(), false
	def.Annotations = &mcp.ToolAnnotations{
		Title:          o.Summary,
		ReadOnlyHint:   ro,
		IdempotentHint: ro || op.Method == http.MethodPut || op.Method == http.MethodDelete,
		OpenWorldHint:  &closed,
	}
	if !ro {
		def.Annotations.DestructiveHint = &destructive
	}
	t.Def = def
	return t, nil
}

func describe(op Operation, o *openapi3.Operation) string {
	var b strings.Builder
	b.WriteString(strings.TrimSpace(o.Summary))
	if d := strings.TrimSpace(o.Description); d != "" {
		b.WriteString("\n\n" + d)
	}
	if op.Scope == "" {
		fmt.Fprintf(&b, "\n\nREST: %s %s (no key needed).", op.Method, op.Path)
	} else {
		fmt.Fprintf(&b, "\n\nREST: %s %s (scope %s).", op.Method, op.Path, op.Scope)
	}
	if op.SpendsMoney {
		b.WriteString(" Spends money: the first call answers a quote and a confirmation_token; call again with the same arguments and the token once the user approved.")
	}
	return strings.TrimSpace(b.String())
}

// outputSchema is the JSON schema of the first 2xx JSON response, when it is
// an object (MCP structured content is an object).
func outputSchema(o *openapi3.Operation) map[string]any {
	if o.Responses == nil {
		return nil
	}
	codes := make([]string, 0, o.Responses.Len())
	for code := range o.Responses.Map() {
		codes = append(codes, code)
	}
	sort.Strings(codes)
	for _, code := range codes {
		if !strings.HasPrefix(code, "2") {
			continue
		}
		r := o.Responses.Value(code)
		if r == nil || r.Value == nil {
			continue
		}
		mt := r.Value.Content.Get("application/json")
		if mt == nil || mt.Schema == nil {
			return nil
		}
		s := jsonSchema(mt.Schema)
		if !objectSchema(s) {
			return nil
		}
		s["type"] = "object" // an allOf of objects says so at its root, as MCP wants
		return s
	}
	return nil
}

// objectSchema: s only admits objects (its type, or every allOf member's).
func objectSchema(s map[string]any) bool {
	if t, ok := s["type"]; ok {
		return t == "object"
	}
	all, _ := s["allOf"].([]any)
	for _, m := range all {
		if ms, _ := m.(map[string]any); ms == nil || !objectSchema(ms) {
			return false
		}
	}
	return len(all) > 0
}

// ToolName is the stable naming rule: the operationId in snake_case
// (listServerIPs → list_server_ips), else the method and the path's literal
// segments (POST /v1/tickets/{id}/reply → post_tickets_reply).
func ToolName(op Operation, operationID string) string {
	if operationID != "" {
		return snake(operationID)
	}
	parts := []string{strings.ToLower(op.Method)}
	for i, seg := range strings.Split(strings.Trim(op.Path, "/"), "/") {
		if seg == "" || strings.HasPrefix(seg, "{") || (i == 0 && seg == "v1") {
			continue
		}
		parts = append(parts, strings.NewReplacer("-", "_", ".", "_").Replace(seg))
	}
	return snake(strings.Join(parts, "_"))
}

// snake turns camelCase (with acronyms: listServerIPs, setServerPTR) into
// snake_case.
func snake(s string) string {
	rs := []rune(s)
	var b strings.Builder
	for i, r := range rs {
		if unicode.IsUpper(r) {
			prevLower := i > 0 && (unicode.IsLower(rs[i-1]) || unicode.IsDigit(rs[i-1]))
			nextLower := i+1 < len(rs) && unicode.IsLower(rs[i+1]) && i > 0 && unicode.IsUpper(rs[i-1])
			// "IPs": the s is a plural, not a new word.
			if nextLower && rs[i+1] == 's' && (i+2 == len(rs) || !unicode.IsLower(rs[i+2])) {
				nextLower = false
			}
			if (prevLower || nextLower) && b.Len() > 0 && !strings.HasSuffix(b.String(), "_") {
				b.WriteByte('_')
			}
			b.WriteRune(unicode.ToLower(r))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}
