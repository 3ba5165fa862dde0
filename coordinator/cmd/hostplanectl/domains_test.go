package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/registrar"
	"github.com/hostplane/hostplane/coordinator/internal/server"
	"github.com/hostplane/hostplane/coordinator/internal/testcluster"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/client"
	"github.com/spf13/cobra"
)

// runCmd runs the command newCmd makes with args, its output discarded.
func runCmd(newCmd func(*globals) *cobra.Command, g *globals, args ...string) error {
	return execQuiet(newCmd(g), args...)
}

// TestDomainCLI: `hostplanectl product create --category domain` offers a
// TLD (refusals name the field), and `hostplanectl domain list|show` show a
// registered domain with its owner (a coordinator with an in-memory
// registry).
func TestDomainCLI(t *testing.T) {
	run := runCmd
	var ue usageError
	if err := run(newProductCmd, &globals{}, "create", "domain-test", "--category", "domain", "--tld", "test"); !errors.As(err, &ue) {
		t.Fatalf("a domain product without --yearly-price: %v", err)
	}
	if testing.Short() {
		return
	}
	c := testcluster.New(t, 1, func(_ int, cfg *server.Config) { cfg.DomainReg.Registrar = registrar.NewMemory(nil, "test") })
	c.WaitConverged(10 * time.Second)
	g := &globals{socket: c.Nodes[0].Cfg.AdminSocket, json: true}
	ctx := context.Background()
	var ae *api.Error
	if err := run(newProductCmd, g, "create", "domain-x", "--category", "domain", "--tld", "-x", "--yearly-price", "1000"); !errors.As(err, &ae) || !strings.Contains(ae.Message, `"tld"`) {
		t.Fatalf("a bad tld: %v", err)
	}
	if err := run(newProductCmd, g, "create", "domain-test", "--category", "domain", "--tld", "test", "--yearly-price", "1000"); err != nil {
		t.Fatal(err)
	}
	adm := client.NewAdmin(g.socket)
	acc, key := c.NewAccount("cli-domains@example.com", api.ScopeDomainsRead, api.ScopeOrdersWrite)
	if _, err := adm.CreditWallet(ctx, acc.ID, api.WalletCreditRequest{AmountUsdCents: 1000, Gateway: "test"}); err != nil {
		t.Fatal(err)
	}
	d, err := c.Client(0, key).RegisterDomain(ctx, api.DomainOrderRequest{Name: "cli.test", Contact: api.DomainContact{
		Name: "Ada", Street: []string{"1 Road"}, City: "Istanbul", CC: "TR", Email: "ada@example.com"}}, "")
	if err != nil || d.Status != api.DomainActive || d.YearlyUsdCents != 1000 {
		t.Fatalf("register: %+v %v", d, err)
	}
	if err := run(newDomainCmd, g, "list", "--account", acc.ID); err != nil {
		t.Fatal(err)
	}
	if err := run(newDomainCmd, g, "show", d.ID); err != nil {
		t.Fatal(err)
	}
	if err := run(newDomainCmd, g, "show", "dom_missing"); api.StatusOf(err) != 404 {
		t.Fatalf("show of a missing domain: %v", err)
	}
	ds, err := adm.Domains(ctx, acc.ID)
	if err != nil || len(ds) != 1 || ds[0].ID != d.ID || ds[0].AccountID != acc.ID || ds[0].Op != nil {
		t.Fatalf("admin domains %+v (%v)", ds, err)
	}
	// Another account has none of them (an id that names no account is a
	// 404 since the list checks its filter: the other account is a real one).
	otherAcc, err := adm.CreateAccount(ctx, api.AccountCreateRequest{Email: "other@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if other, err := adm.Domains(ctx, otherAcc.ID); err != nil || len(other) != 0 {
		t.Fatalf("another account's domains %+v (%v)", other, err)
	}
	if _, err := adm.Domains(ctx, "acc_other"); api.StatusOf(err) != 404 {
		t.Fatalf("domains of an account that does not exist: %v", err)
	}
}
