package main

import (
	"context"
	"encoding/json"
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
	acc, key := c.NewAccount("cli-domains@example.com", api.ScopeDomainsRead, api.ScopeDomainsWrite, api.ScopeOrdersWrite)
	if _, err := adm.CreditWallet(ctx, acc.ID, api.WalletCreditRequest{AmountUsdCents: 2000, Gateway: "test"}); err != nil {
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
	domainHostsCLI(t, c, g, key, d)
}

// domainHostsCLI: `hostplanectl domain hosts DOMAIN` (by id or name) lists a
// domain's child name servers with their glue and which of the owner's
// domains name each as a name server, in text and JSON; `domain show` has a
// hosts line; a domain that does not exist is a 404.
func domainHostsCLI(t *testing.T, c *testcluster.Cluster, g *globals, key string, d api.Domain) {
	ctx := context.Background()
	cl := c.Client(0, key)
	text := &globals{socket: g.socket}
	if out, err := stdoutOf(t, func() error { return runCmd(newDomainCmd, text, "hosts", d.ID) }); err != nil || out != "HOST  ADDRESSES  NAMESERVER_OF  PENDING\n" {
		t.Fatalf("hosts of a domain without any: %q %v", out, err)
	}
	if _, err := cl.SetDomainHost(ctx, d.ID, "ns1.cli.test", api.DomainHostRequest{Addresses: []string{"2606:4700::53", "8.8.8.8"}}, ""); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		got, err := cl.Domain(ctx, d.ID)
		if err == nil && len(got.Hosts) == 1 && got.Change.Status == api.ChangeApplied {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the host was not applied: %+v %v", got, err)
		}
	}
	d2, err := cl.RegisterDomain(ctx, api.DomainOrderRequest{Name: "cli2.test", Nameservers: []string{"ns1.cli.test", "ns2.example.net"}, Contact: api.DomainContact{
		Name: "Ada", Street: []string{"1 Road"}, City: "Istanbul", CC: "TR", Email: "ada@example.com"}}, "")
	if err != nil || d2.Status != api.DomainActive {
		t.Fatalf("register cli2.test: %+v %v", d2, err)
	}
	want := "HOST          ADDRESSES              NAMESERVER_OF  PENDING\nns1.cli.test  8.8.8.8,2606:4700::53  cli2.test      -\n"
	for _, arg := range []string{d.ID, "CLI.test."} {
		if out, err := stdoutOf(t, func() error { return runCmd(newDomainCmd, text, "hosts", arg) }); err != nil || out != want {
			t.Fatalf("hosts %s:\n%s%v, want\n%s", arg, out, err, want)
		}
	}
	out, err := stdoutOf(t, func() error { return runCmd(newDomainCmd, g, "hosts", d.ID) })
	var rows []domainHostRow
	if err != nil || json.Unmarshal([]byte(out), &rows) != nil || len(rows) != 1 || rows[0].Name != "ns1.cli.test" ||
		strings.Join(rows[0].Addresses, ",") != "8.8.8.8,2606:4700::53" || strings.Join(rows[0].NameserverOf, ",") != "cli2.test" || rows[0].Pending != "" {
		t.Fatalf("hosts --json: %s %v", out, err)
	}
	if out, err := stdoutOf(t, func() error { return runCmd(newDomainCmd, text, "show", d.ID) }); err != nil || !strings.Contains(out, "hosts:         ns1.cli.test (8.8.8.8, 2606:4700::53)\n") {
		t.Fatalf("show: %s %v", out, err)
	}
	for _, arg := range []string{"dom_missing", "nope.test"} {
		if err := runCmd(newDomainCmd, g, "hosts", arg); api.StatusOf(err) != 404 {
			t.Fatalf("hosts %s: %v", arg, err)
		}
	}
}
