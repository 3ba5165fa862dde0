package fsm

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"strings"
	"testing"
)

// TestEmitsOnlyCatalogueEvents: every event the FSM emits names a constant of
// the catalogue (api.Event*), never a string or a computed name, so an event
// outside the catalogue cannot be emitted.
func TestEmitsOnlyCatalogueEvents(t *testing.T) {
	files, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	for _, de := range files {
		name := de.Name()
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || sel.Sel.Name != "emit" || len(call.Args) == 0 {
				return true
			}
			calls++
			arg, ok := call.Args[0].(*ast.SelectorExpr)
			var pkg *ast.Ident
			if ok {
				pkg, _ = arg.X.(*ast.Ident)
			}
			if pkg == nil || pkg.Name != "api" || !strings.HasPrefix(arg.Sel.Name, "Event") {
				t.Errorf("%s: emit's event is not an api.Event* constant", name)
			}
			return true
		})
	}
	if calls == 0 {
		t.Fatal("found no emit calls: the check reads nothing")
	}
}
