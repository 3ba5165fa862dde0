package store

import (
	"go/ast"
	"go/parser"
	"go/printer"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestNoReadBesideACallThatFillsIt: no return statement or multi-value
// assignment of the module reads a variable in one operand while a call in
// another operand fills it (`return v, get(&v)`, `return t, t.Unmarshal(b)`
// with a pointer method, `return v, f(func() { v = ... })`). The Go spec
// orders the calls of a statement among themselves but leaves a variable's
// read unordered against them: gc reads v after the call today, another
// compiler (or gc tomorrow) may return the zero value. Such code reads
// `err := get(&v); return v, err` instead.
//
// The check is syntactic (no types): a method called on the variable
// counts as filling it when the function declares it `var v T` with T a
// type name (the method may have a pointer receiver); what *p reads is
// not checked.
func TestNoReadBesideACallThatFillsIt(t *testing.T) {
	// The check finds each form it knows, and not the rewritten ones.
	const sample = `package p
func a() (T, error) { var v T; return v, get(&v) }
func b() (time.Time, bool) { var t time.Time; return t, t.UnmarshalJSON(nil) == nil }
func c() (int, error) { n := 0; return n, each(func() { n++ }) }
func d() (T, error) { var v T; err := get(&v); return v, err }
func e() (*T, error) { p := &T{}; return p, p.put() }
`
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "sample.go", sample, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	var lines []int
	evalOrderReads(fset, f, func(pos token.Position, _, _ string) { lines = append(lines, pos.Line) })
	if !slices.Equal(lines, []int{2, 3, 4}) {
		t.Fatalf("the check finds the sample's lines %v, want [2 3 4]", lines)
	}

	root := moduleRoot(t)
	statements := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case d.IsDir() && path != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata"):
			return filepath.SkipDir
		case d.IsDir() || !strings.HasSuffix(path, ".go"):
			return nil
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err == nil {
			statements += evalOrderReads(fset, f, func(pos token.Position, v, call string) {
				rel, _ := filepath.Rel(root, pos.Filename)
				t.Errorf("%s:%d: %s is read beside %s, which may fill it, in an unspecified order: make the call first, then read %s",
					rel, pos.Line, v, call, v)
			})
		}
		return err
	})
	if err != nil || statements < 1000 {
		t.Fatalf("read %d statements of several values under %s (%v): the check reads nothing", statements, root, err)
	}
}

// evalOrderReads calls found for each statement of f that reads variable v
// beside a call that may fill it, and answers how many statements of
// several values (return, assignment) it read.
func evalOrderReads(fset *token.FileSet, f *ast.File, found func(pos token.Position, v, call string)) (statements int) {
	for _, d := range f.Decls {
		fd, ok := d.(*ast.FuncDecl)
		if !ok || fd.Body == nil {
			continue
		}
		values := valueVars(fd.Body)
		ast.Inspect(fd.Body, func(n ast.Node) bool {
			var ops []ast.Expr
			switch s := n.(type) {
			case *ast.ReturnStmt:
				ops = s.Results
			case *ast.AssignStmt:
				ops = s.Rhs
			}
			if len(ops) < 2 {
				return true
			}
			statements++
			for i, op := range ops {
				for _, v := range readVars(op) {
					for j, other := range ops {
						if j != i && fillsVar(other, v, values) {
							found(fset.Position(n.Pos()), v.name, source(other))
						}
					}
				}
			}
			return true
		})
	}
	return statements
}

// source is e as source text, for the message.
func source(e ast.Expr) string {
	var b strings.Builder
	_ = printer.Fprint(&b, token.NewFileSet(), e)
	return b.String()
}

// moduleRoot is the directory of go.mod above the package.
func moduleRoot(t *testing.T) string {
	dir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		up := filepath.Dir(dir)
		if up == dir {
			t.Fatal("no go.mod above the package")
		}
		dir = up
	}
}

// rootName is the variable e reads directly (v of v, v.f.g, v[i]) and
// false when e reaches its value through a pointer (*p) or is no variable.
func rootName(e ast.Expr) (string, bool) {
	for {
		switch x := e.(type) {
		case *ast.ParenExpr:
			e = x.X
		case *ast.SelectorExpr:
			e = x.X
		case *ast.IndexExpr:
			e = x.X
		case *ast.Ident:
			switch x.Name {
			case "_", "nil", "true", "false", "iota":
				return "", false
			}
			return x.Name, true
		default:
			return "", false
		}
	}
}

// varRead is a variable an operand reads: bare when the operand reads the
// variable itself (v), not a part of it (v.f, v[i]).
type varRead struct {
	name string
	bare bool
}

// readVars lists the variables op reads outside any call (a call's
// arguments are read before it is made).
func readVars(op ast.Expr) []varRead {
	var rs []varRead
	var walk func(ast.Expr)
	walk = func(e ast.Expr) {
		switch x := e.(type) {
		case *ast.Ident, *ast.SelectorExpr, *ast.IndexExpr:
			if v, ok := rootName(e); ok {
				_, bare := e.(*ast.Ident)
				rs = append(rs, varRead{name: v, bare: bare})
			}
			if ix, ok := x.(*ast.IndexExpr); ok {
				walk(ix.Index)
			}
		case *ast.ParenExpr:
			walk(x.X)
		case *ast.BinaryExpr:
			walk(x.X)
			walk(x.Y)
		case *ast.UnaryExpr:
			if x.Op != token.AND {
				walk(x.X)
			}
		case *ast.CompositeLit:
			for _, el := range x.Elts {
				if kv, ok := el.(*ast.KeyValueExpr); ok {
					el = kv.Value
				}
				walk(el)
			}
		}
	}
	walk(op)
	return rs
}

// valueVars lists the variables body declares as `var v T` with T a type
// name (not a pointer, slice, map, ...): a method called on one may have a
// pointer receiver and fill it.
func valueVars(body *ast.BlockStmt) map[string]bool {
	vs := map[string]bool{}
	ast.Inspect(body, func(n ast.Node) bool {
		spec, ok := n.(*ast.ValueSpec)
		if !ok {
			return true
		}
		switch spec.Type.(type) {
		case *ast.Ident, *ast.SelectorExpr, *ast.IndexExpr:
			for _, name := range spec.Names {
				vs[name.Name] = true
			}
		}
		return true
	})
	return vs
}

// fillsVar reports whether op makes a call that may write v: op takes
// v's address (&v, &v.f) in it, calls a method on a value variable read
// bare (t.UnmarshalJSON(b) beside t, t declared `var t time.Time`), or holds
// a function literal that assigns v or takes its address.
func fillsVar(op ast.Expr, v varRead, values map[string]bool) bool {
	calls, fills := false, false
	ast.Inspect(op, func(n ast.Node) bool {
		switch x := n.(type) {
		case *ast.UnaryExpr:
			if r, ok := rootName(x.X); x.Op == token.AND && ok && r == v.name {
				fills = true
			}
		case *ast.CallExpr:
			calls = true
			if sel, ok := x.Fun.(*ast.SelectorExpr); ok && v.bare && values[v.name] {
				if id, ok := sel.X.(*ast.Ident); ok && id.Name == v.name {
					fills = true
				}
			}
		case *ast.FuncLit:
			ast.Inspect(x.Body, func(m ast.Node) bool {
				switch s := m.(type) {
				case *ast.AssignStmt:
					for _, l := range s.Lhs {
						if r, ok := rootName(l); ok && r == v.name && s.Tok != token.DEFINE {
							fills = true
						}
					}
				case *ast.IncDecStmt:
					if r, ok := rootName(s.X); ok && r == v.name {
						fills = true
					}
				case *ast.UnaryExpr:
					if r, ok := rootName(s.X); s.Op == token.AND && ok && r == v.name {
						fills = true
					}
				}
				return true
			})
			return false
		}
		return true
	})
	return calls && fills
}
