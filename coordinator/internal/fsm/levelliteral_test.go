package fsm

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestNoLiteralLevelComparisons: no code of the coordinator compares a
// semantics level (a ClusterLevel() or MaxLevel() call, a level() func, a
// variable or field named level) with a literal feature level (2 and up):
// each gated behaviour names the level it needs (LevelOf(Cmd...),
// LevelCleanupRetry, ...), so raising one feature's level, or finding what a
// level gates, does not mean finding every 2. (0, no level reported, and 1,
// the level of every state before levels existed, are no feature's.)
func TestNoLiteralLevelComparisons(t *testing.T) {
	root := filepath.Join("..", "..") // coordinator/
	compared := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			b, ok := n.(*ast.BinaryExpr)
			if !ok {
				return true
			}
			switch b.Op {
			case token.LSS, token.LEQ, token.GTR, token.GEQ, token.EQL, token.NEQ:
			default:
				return true
			}
			for _, pair := range [][2]ast.Expr{{b.X, b.Y}, {b.Y, b.X}} {
				if !isLevel(pair[0]) {
					continue
				}
				compared++
				if lit, ok := pair[1].(*ast.BasicLit); ok && lit.Kind == token.INT {
					if v, _ := strconv.ParseInt(lit.Value, 0, 64); v >= 2 {
						t.Errorf("%s: a semantics level compared with the literal %s: name the level the behaviour needs", fset.Position(b.Pos()), lit.Value)
					}
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d comparisons of a semantics level read", compared)
	if compared < 5 {
		t.Fatalf("found %d level comparisons in %s: the check reads nothing", compared, root)
	}
}

// isLevel reports whether e is a semantics level: a call of ClusterLevel,
// MaxLevel, clusterLevel or level, or a name or field called level or Level.
func isLevel(e ast.Expr) bool {
	name := ""
	switch e := e.(type) {
	case *ast.CallExpr:
		switch f := e.Fun.(type) {
		case *ast.Ident:
			name = f.Name
		case *ast.SelectorExpr:
			name = f.Sel.Name
		}
		return name == "ClusterLevel" || name == "MaxLevel" || name == "clusterLevel" || name == "level"
	case *ast.Ident:
		name = e.Name
	case *ast.SelectorExpr:
		name = e.Sel.Name
	}
	return strings.EqualFold(name, "level") || name == "maxLevel" || name == "MaxLevel"
}
