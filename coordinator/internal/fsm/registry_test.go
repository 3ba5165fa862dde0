package fsm

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// wireCommands is every command type with its number, as old Raft logs and
// snapshots hold them. Never change or remove a row: a new command type is
// appended with its new number (and declared in registry.go).
var wireCommands = []struct {
	name string
	num  uint16
}{
	{"CmdAccountCreate", 1},
	{"CmdKeyCreate", 2},
	{"CmdKeyRevoke", 3},
	{"CmdKeyUsage", 4},
	{"CmdWalletCredit", 5},
	{"CmdInvoiceIssue", 6},
	{"CmdInvoicePay", 7},
	{"CmdTicketCreate", 8},
	{"CmdTicketReply", 9},
	{"CmdTicketClose", 10},
	{"CmdTicketStatus", 11},
	{"CmdIdemExpire", 12},
	{"CmdNodeRegister", 13},
	{"CmdBatch", 14},
	{"CmdWebhookCreate", 20},
	{"CmdWebhookUpdate", 21},
	{"CmdWebhookDelete", 22},
	{"CmdWebhookRotateSecret", 23},
	{"CmdWebhookAttempts", 24},
	{"CmdWebhookRedeliver", 25},
	{"CmdNodeCAInit", 40},
	{"CmdNodeTokenCreate", 41},
	{"CmdNodeEnrol", 42},
	{"CmdNodeHello", 43},
	{"CmdNodeState", 44},
	{"CmdNodeCertRenew", 45},
	{"CmdNodeRemove", 46},
	{"CmdNodeSessionAddr", 47},
	{"CmdNodeSchedule", 48},
	{"CmdServerCreate", 60},
	{"CmdActionCreate", 61},
	{"CmdActionProgress", 62},
	{"CmdActionFinish", 63},
	{"CmdServerLabel", 64},
	{"CmdServerObserved", 65},
	{"CmdActionsFinished", 66},
	{"CmdServerPTR", 67},
	{"CmdIPPoolCreate", 80},
	{"CmdIPPoolRemove", 81},
	{"CmdIPReserve", 82},
	{"CmdIPRelease", 83},
	{"CmdReverseZoneAdd", 90},
	{"CmdReverseZoneRemove", 91},
	{"CmdReverseZoneSynced", 92},
	{"CmdHostingCreate", 100},
	{"CmdHostingAction", 101},
	{"CmdCustomDomainSet", 120},
	{"CmdCustomDomainVerified", 121},
	{"CmdCustomDomainDelete", 122},
	{"CmdACMEAccountInit", 123},
	{"CmdACMEAccountRegistered", 124},
	{"CmdCertOrderStart", 125},
	{"CmdCertIssued", 126},
	{"CmdCertFailed", 127},
	{"CmdCertRetry", 128},
	{"CmdCertInstalled", 129},
	{"CmdOAuthClientRegister", 150},
	{"CmdOAuthDeviceStart", 151},
	{"CmdOAuthDeviceDecide", 152},
	{"CmdOAuthDeviceRedeem", 153},
	{"CmdOAuthCodeCreate", 154},
	{"CmdOAuthCodeRedeem", 155},
	{"CmdOAuthRefresh", 156},
	{"CmdOAuthRevoke", 157},
	{"CmdOAuthSweep", 158},
	{"CmdProductPut", 200},
	{"CmdProductRetire", 201},
	{"CmdAccountPricing", 202},
	{"CmdServerOrder", 203},
	{"CmdRenewalSweep", 220},
	{"CmdDomainOrder", 300},
	{"CmdDomainOpDone", 301},
	{"CmdDomainChange", 302},
	{"CmdDomainSweep", 303},
	{"CmdDomainAnswerClose", 304},
	{"CmdDomainHost", 305},
	{"CmdAccountKeyCreate", 330},
	{"CmdAccountKeyRevoke", 331},
	{"CmdHostingOrder", 340},
	{"CmdServiceSuspend", 341},
	{"CmdOSTemplateLabel", 342},
	{"CmdOSTemplateUnlabel", 343},
	{"CmdKEKMark", 370},
	{"CmdClusterBrand", 390},
	{"CmdIdemAnswer", 440},
	{"CmdHostingPasswordReset", 500},
	{"CmdClusterLevel", 570},
	{"CmdNodeLocation", 700},
	{"CmdKeyUsageFlush", 890},
	{"CmdHostingUsage", 910},
}

// TestCommandNumbers pins every command type's number (registry.go): a
// renumbered, reused or removed one fails, and so does one declared
// outside registry.go, out of number order, without a handler, or not yet
// in wireCommands.
func TestCommandNumbers(t *testing.T) {
	fset := token.NewFileSet()
	paths, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var files []*ast.File
	for _, p := range paths {
		if strings.HasSuffix(p, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, p, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	type declared struct {
		num uint16
		pos token.Position
	}
	decl := map[string]declared{}
	var order []string
	for _, f := range files {
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.CONST {
				continue
			}
			for _, s := range g.Specs {
				vs := s.(*ast.ValueSpec)
				if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != "CommandType" {
					continue
				}
				pos := fset.Position(vs.Pos())
				if filepath.Base(pos.Filename) != "registry.go" {
					t.Errorf("%s: command type %s is declared outside registry.go (the one catalogue)", pos, vs.Names[0].Name)
				}
				for i, n := range vs.Names {
					var lit *ast.BasicLit
					if i < len(vs.Values) {
						lit, _ = vs.Values[i].(*ast.BasicLit)
					}
					v, err := uint64(0), error(nil)
					if lit != nil {
						v, err = strconv.ParseUint(lit.Value, 0, 16)
					}
					if lit == nil || err != nil {
						t.Errorf("%s: command type %s needs a literal number", pos, n.Name)
						continue
					}
					decl[n.Name] = declared{uint16(v), pos}
					order = append(order, n.Name)
				}
			}
		}
	}
	for i := 1; i < len(order); i++ {
		a, b := decl[order[i-1]], decl[order[i]]
		if a.pos.Filename == b.pos.Filename && a.num >= b.num {
			t.Errorf("%s: %s (%d) follows %s (%d): keep the catalogue in number order", b.pos, order[i], b.num, order[i-1], a.num)
		}
	}
	want := map[string]bool{}
	for _, w := range wireCommands {
		want[w.name] = true
		d, ok := decl[w.name]
		switch {
		case !ok:
			t.Errorf("command type %s (%d) is gone: old logs hold it, never remove one", w.name, w.num)
		case d.num != w.num:
			t.Errorf("%s: command type %s is %d, on disk it is %d: never renumber one", d.pos, w.name, d.num, w.num)
		}
	}
	nums := map[uint16]string{}
	for _, name := range order {
		d := decl[name]
		if !want[name] {
			t.Errorf("%s: command type %s (%d) is not in wireCommands: append it there", d.pos, name, d.num)
		}
		if other, dup := nums[d.num]; dup {
			t.Errorf("%s: command types %s and %s share number %d", d.pos, other, name, d.num)
		}
		nums[d.num] = name
		if _, ok := handlers[CommandType(d.num)]; !ok && CommandType(d.num) != CmdBatch {
			t.Errorf("command type %s (%d) has no entry in handlers", name, d.num)
		}
	}
	for c := range handlers {
		if _, ok := nums[uint16(c)]; !ok {
			t.Errorf("handlers has an entry for %d, which no command type of registry.go names", c)
		}
	}
}
