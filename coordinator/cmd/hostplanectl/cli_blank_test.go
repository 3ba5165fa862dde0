package main

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/client"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// leaves are the runnable commands of the tree under c, with their paths
// from the root (without it).
func leaves(c *cobra.Command, path []string) map[string]*cobra.Command {
	out := map[string]*cobra.Command{}
	for _, s := range c.Commands() {
		if s.Hidden || s.Name() == "help" || s.Name() == "completion" {
			continue
		}
		p := append(slices.Clone(path), s.Name())
		if s.Runnable() && !s.HasSubCommands() {
			out[strings.Join(p, " ")] = s
		}
		for k, v := range leaves(s, p) {
			out[k] = v
		}
	}
	return out
}

// TestCLIBlankArgumentsAndFlags runs the hostplanectl binary against a real
// coordinator with blank values where a value is due, and wants each to
// exit 2 naming the argument or the flag on stderr, print nothing on stdout
// and change nothing:
//   - every positional argument of every command (from the command tree,
//     each position in turn) given "", " ", "." or "..": an id is a path
//     segment of the admin call, and such a segment named another endpoint
//     (before, "hosting unsuspend ”" POSTed /admin/hosting/unsuspend,
//     "ticket close ”" /admin/tickets/status, "wallet credit ”"
//     /admin/accounts/wallet/credit, each a confusing 404 or 405 exiting 1,
//     "cluster backup ”" a rename error);
//   - the flags whose leaving out means something (every account, any node,
//     both passwords, no idempotency key), given "": before, "hosting list
//     --account ”", "domain list", "server list --account/--node ”" and
//     "ticket list --status ”" listed every customer's, "wallet credit
//     --idempotency-key ”" credited again on a retry, "invoice issue" the
//     same, "hosting password-reset --target ”" reset both passwords.
func TestCLIBlankArgumentsAndFlags(t *testing.T) {
	c, g, adm, acc, bin := ctlCluster(t, "blanks@example.com")
	ctx := context.Background()
	k, err := adm.CreateKey(ctx, acc.ID, api.KeyCreateRequest{Scopes: []string{api.ScopeBillingRead, api.ScopeTicketsRead}})
	if err != nil {
		t.Fatal(err)
	}
	// A refusal that let "cluster backup ' '" through would write a file
	// named " ": into a directory of the test's, checked empty at the end.
	cwd := t.TempDir()
	t.Chdir(cwd)
	sock := []string{"--socket", g.socket}
	wantRefused := func(args []string, says string) {
		t.Helper()
		stdout, stderr, code := runCtl(t, bin, append(slices.Clone(sock), args...)...)
		if code != 2 || stdout != "" || !strings.Contains(stderr, says) {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit 2 naming %s, nothing on stdout", args, code, stdout, stderr, says)
		}
	}

	started := false
	tree := leaves(newRootCmd(&globals{}, &started), nil)
	probed := 0
	for path, cmd := range tree {
		names := argNames(cmd.Use)
		for i, name := range names {
			if strings.ContainsAny(name, "-=") || name == "" {
				t.Fatalf("%s: use %q gives argument names %q", path, cmd.Use, names)
			}
			for _, blank := range []string{"", " ", ".", ".."} {
				args := strings.Fields(path)
				for j := range names {
					v := "x1"
					if j == i {
						v = blank
					}
					args = append(args, v)
				}
				if cmd.Args != nil && cmd.Args(cmd, args[len(strings.Fields(path)):]) != nil {
					args = args[:len(args)-(len(names)-i-1)] // optional arguments after it left out
				}
				wantRefused(args, name)
				probed++
			}
		}
	}
	if probed < 4*60 {
		t.Fatalf("only %d blank arguments probed in %d commands", probed, len(tree))
	}

	// Every flag marked to hold a value when given, through the tree, and
	// a command line for each that would run with it.
	runs := map[string][]string{
		"hosting list --account":           {"hosting", "list"},
		"domain list --account":            {"domain", "list"},
		"server list --account":            {"server", "list"},
		"server list --node":               {"server", "list"},
		"ticket list --status":             {"ticket", "list"},
		"wallet credit --idempotency-key":  {"wallet", "credit", acc.ID, "--amount", "5"},
		"wallet credit --gateway":          {"wallet", "credit", acc.ID, "--amount", "5"},
		"account create --country":         {"account", "create", "--email", "blank-country@example.com"},
		"invoice issue --idempotency-key":  {"invoice", "issue", acc.ID, "--line", "Disk=1.00"},
		"hosting password-reset --target":  {"hosting", "password-reset", "hst_01m8y5pc00y7dajqfjq7d8j44t"},
		"hosting create --node":            {"hosting", "create", "--account", acc.ID, "--plan", "hosting-starter", "--domain", "blank.example", "--username", "blank"},
		"hosting create --php":             {"hosting", "create", "--account", acc.ID, "--plan", "hosting-starter", "--domain", "blank.example", "--username", "blank"},
		"hosting create --location":        {"hosting", "create", "--account", acc.ID, "--plan", "hosting-starter", "--domain", "blank.example", "--username", "blank"},
		"server create --node":             {"server", "create", "--account", acc.ID, "--plan", "nano", "--template", "debian-12"},
		"server create --location":         {"server", "create", "--account", acc.ID, "--plan", "nano", "--template", "debian-12"},
		"cluster transfer-leadership --to": {"cluster", "transfer-leadership"},
	}
	marked := 0
	for path, cmd := range tree {
		cmd.Flags().VisitAll(func(f *pflag.Flag) {
			if f.Annotations[givenNonEmpty] == nil {
				return
			}
			marked++
			args, ok := runs[path+" --"+f.Name]
			if !ok {
				t.Errorf("%s --%s is marked but not probed here", path, f.Name)
				return
			}
			for _, blank := range []string{"", " "} {
				wantRefused(append(slices.Clone(args), "--"+f.Name, blank), "--"+f.Name+" is empty")
			}
		})
	}
	if marked != len(runs) {
		t.Errorf("%d flags marked, %d probed", marked, len(runs))
	}
	// Nothing changed: no credit, no invoice, the one key.
	cl := client.New(c.URL(0), k.Key)
	if w, err := cl.Wallet(ctx); err != nil || w.BalanceUsdCents != 0 {
		t.Errorf("the refusals moved the wallet: %+v %v", w, err)
	}
	if inv, err := cl.Invoices(ctx, 1, 10); err != nil || inv.Total != 0 {
		t.Errorf("the refusals left invoices %+v (%v)", inv, err)
	}
	if keys, err := adm.Keys(ctx, acc.ID); err != nil || len(keys) != 1 {
		t.Errorf("the refusals left keys %+v (%v)", keys, err)
	}
	if a, err := adm.Account(ctx, "blank-country@example.com"); err == nil {
		t.Errorf("the refusals made the account %+v", a)
	}
	if es, err := os.ReadDir(cwd); err != nil || len(es) != 0 {
		t.Errorf("the refusals wrote into the working directory: %v %v", es, err)
	}
	// What the flags are for still works.
	for _, args := range [][]string{{"--json", "hosting", "list", "--account", acc.ID}, {"--json", "ticket", "list", "--status", "open"}, {"--json", "server", "list", "--account", acc.ID}} {
		if stdout, stderr, code := runCtl(t, bin, append(slices.Clone(sock), args...)...); code != 0 || strings.TrimSpace(stdout) != "[]" && !strings.Contains(stdout, `"data": []`) {
			t.Errorf("%q: exit %d, stdout %q, stderr %q", args, code, stdout, stderr)
		}
	}
	t.Logf("%d blank arguments in %d commands and %d blank flags refused", probed, len(tree), 2*marked)
}
