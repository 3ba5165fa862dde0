package api

import (
	"go/ast"
	"go/parser"
	"go/token"
	"strconv"
	"testing"
)

// TestWebhookCatalogue: every WebhookEvent constant has one catalogue entry,
// and every entry has its constant.
func TestWebhookCatalogue(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "webhooks.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	consts := map[string]string{} // value → constant name
	ast.Inspect(f, func(n ast.Node) bool {
		vs, ok := n.(*ast.ValueSpec)
		if !ok {
			return true
		}
		if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != "WebhookEvent" {
			return true
		}
		for i, name := range vs.Names {
			v, err := strconv.Unquote(vs.Values[i].(*ast.BasicLit).Value)
			if err != nil {
				t.Fatal(err)
			}
			if prev, dup := consts[v]; dup {
				t.Errorf("%s and %s both name %q", prev, name.Name, v)
			}
			consts[v] = name.Name
		}
		return true
	})
	if len(consts) == 0 {
		t.Fatal("no WebhookEvent constants found")
	}
	seen := map[string]bool{}
	for _, e := range WebhookEvents {
		if seen[e.Name] {
			t.Errorf("catalogue lists %q twice", e.Name)
		}
		seen[e.Name] = true
		if _, ok := consts[e.Name]; !ok {
			t.Errorf("catalogue entry %q has no WebhookEvent constant", e.Name)
		}
		if !IsWebhookEvent(e.Name) {
			t.Errorf("IsWebhookEvent(%q) = false", e.Name)
		}
	}
	for v, name := range consts {
		if !seen[v] {
			t.Errorf("constant %s (%q) is not in the catalogue", name, v)
		}
	}
}
