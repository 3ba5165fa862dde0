package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/client"
)

// buildCtl builds this package's hostplanectl into a directory of t's.
func buildCtl(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "hostplanectl")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// runCtl runs the hostplanectl binary bin with args: its stdout, stderr and
// exit code.
func runCtl(t *testing.T, bin string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return out.String(), errb.String(), ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), 0
}

// TestCLIInputRefusals runs the hostplanectl binary against a real
// coordinator with flag values that would otherwise mint or bill something
// else than the operator wrote: each exits 2 naming the flag on stderr,
// prints nothing on stdout and changes nothing. Before, `key create
// --expires-in -5m` minted a key that never expires, `--scopes " "` one
// with every default scope, `--allow-ip ,` one usable from anywhere;
// `invoice issue --line "Disk=2abcx1.00"` billed 2 disks, `--line
// "Disk=0x1.00"` one, and `--due-days 0` made the invoice due in 7 days;
// `oauth approve --scopes " "` granted the default (for a device that asked
// for nothing, every scope the account's keys hold).
func TestCLIInputRefusals(t *testing.T) {
	c, g, adm, acc, bin := ctlCluster(t, "refusals@example.com")
	ctx := context.Background()
	k, err := adm.CreateKey(ctx, acc.ID, api.KeyCreateRequest{Scopes: []string{api.ScopeBillingRead}})
	if err != nil {
		t.Fatal(err)
	}
	sock := []string{"--socket", g.socket}
	for _, tc := range []struct {
		args []string
		flag string
	}{
		{[]string{"key", "create", acc.ID, "--expires-in", "-5m"}, "--expires-in"},
		{[]string{"key", "create", acc.ID, "--scopes", " "}, "--scopes"},
		{[]string{"key", "create", acc.ID, "--scopes", ",,"}, "--scopes"},
		{[]string{"key", "create", acc.ID, "--scopes", ""}, "--scopes"},
		{[]string{"key", "create", acc.ID, "--allow-ip", ","}, "--allow-ip"},
		{[]string{"key", "create", acc.ID, "--allow-ip", " "}, "--allow-ip"},
		{[]string{"invoice", "issue", acc.ID, "--line", "Disk=2abcx1.00"}, "--line"},
		{[]string{"invoice", "issue", acc.ID, "--line", "Disk=0x1.00"}, "--line"},
		{[]string{"invoice", "issue", acc.ID, "--line", "Disk=-1x1.00"}, "--line"},
		{[]string{"invoice", "issue", acc.ID, "--line", "Disk=1.00", "--due-days", "0"}, "--due-days"},
		{[]string{"invoice", "issue", acc.ID, "--line", "Disk=1.00", "--due-days", "-1"}, "--due-days"},
		{[]string{"oauth", "approve", "WDJB-MJHT", "--account", acc.ID, "--scopes", " "}, "--scopes"},
		{[]string{"oauth", "approve", "WDJB-MJHT", "--account", acc.ID, "--scopes", ","}, "--scopes"},
		{[]string{"wallet", "credit", acc.ID, "--amount", "-5"}, "--amount"},
		{[]string{"wallet", "credit", acc.ID, "--amount", "1e3"}, "--amount"},
		// A location outside the rule of node locations (fsm.CheckLocation),
		// refused by the coordinator before placement.
		{[]string{"hosting", "create", "--account", acc.ID, "--plan", "hosting-starter", "--domain", "loc.example", "--username", "locweb", "--location", "fra/1"}, `--location: 400 Bad Request: field "location" may hold only`},
		{[]string{"hosting", "create", "--account", acc.ID, "--plan", "hosting-starter", "--domain", "loc.example", "--username", "locweb", "--location", " fra-1"}, `--location: 400 Bad Request: field "location" must be 1-64 bytes`},
		{[]string{"server", "create", "--account", acc.ID, "--plan", "nano", "--template", "debian-12", "--location", "fra\n1"}, `--location: 400 Bad Request: field "location" may hold only`},
	} {
		stdout, stderr, code := runCtl(t, bin, append(sock, tc.args...)...)
		if code != 2 || !strings.Contains(stderr, tc.flag) || stdout != "" {
			t.Errorf("%q: want exit 2 naming %s on stderr and nothing on stdout: exit %d, stdout %q, stderr %q", tc.args, tc.flag, code, stdout, stderr)
		}
	}
	keys, err := adm.Keys(ctx, acc.ID)
	if err != nil || len(keys) != 1 {
		t.Fatalf("the refusals left keys %+v (%v)", keys, err)
	}
	cl := client.New(c.URL(0), k.Key)
	if inv, err := cl.Invoices(ctx, 1, 10); err != nil || inv.Total != 0 {
		t.Fatalf("the refusals left invoices %+v (%v)", inv, err)
	}
	if w, err := cl.Wallet(ctx); err != nil || w.BalanceUsdCents != 0 {
		t.Fatalf("the refusals moved the wallet %+v (%v)", w, err)
	}

	// A list filtered by an account id that names no account says so (it
	// printed an empty list, as for an account with nothing); the real
	// account's list is empty and exits 0.
	for _, list := range [][]string{{"server", "list"}, {"hosting", "list"}, {"domain", "list"}} {
		stdout, stderr, code := runCtl(t, bin, append(append(sock, list...), "--account", "acc_01typo")...)
		if code != 1 || !strings.Contains(stderr, "404") || !strings.Contains(stderr, "acc_01typo") || stdout != "" {
			t.Errorf("%v --account acc_01typo: want exit 1 with a 404 naming it: exit %d, stdout %q, stderr %q", list, code, stdout, stderr)
		}
		if stdout, stderr, code := runCtl(t, bin, append(append(sock, "--json"), append(list, "--account", acc.ID)...)...); code != 0 || strings.TrimSpace(stdout) != "[]" {
			t.Errorf("%v --account %s: exit %d, stdout %q, stderr %q", list, acc.ID, code, stdout, stderr)
		}
	}

	// What the flags are for still works, and does what they say.
	stdout, stderr, code := runCtl(t, bin, append(sock, "--json", "key", "create", acc.ID, "--expires-in", "1h", "--scopes", "account:read", "--allow-ip", "10.0.0.0/8")...)
	if code != 0 || !strings.Contains(stdout, `"expires_at": "`) || !strings.Contains(stdout, `"10.0.0.0/8"`) || strings.Contains(stdout, "tickets:") {
		t.Fatalf("key create: exit %d %s %s", code, stdout, stderr)
	}
	stdout, stderr, code = runCtl(t, bin, append(sock, "--json", "invoice", "issue", acc.ID, "--line", "Disk=3x1.50", "--due-days", "1")...)
	if code != 0 || !strings.Contains(stdout, `"total_usd_cents": 450`) {
		t.Fatalf("invoice issue: exit %d %s %s", code, stdout, stderr)
	}
}

// TestNodeCommandsFindThePackagedSocket: `hostplanectl node token create`,
// `node list` and the other coordinator-side node commands default to the
// same admin socket as every other command, the packaged coordinator's
// (/run/hostplane/coordinator/admin.sock) when no other is there (before,
// they looked only in ./.hostplane, so on a packaged install `node token
// create` as README shows it failed while `cluster status` worked).
func TestNodeCommandsFindThePackagedSocket(t *testing.T) {
	dir := t.TempDir()
	packaged := filepath.Join(dir, "run", "admin.sock")
	if err := os.MkdirAll(filepath.Dir(packaged), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(packaged, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	old := packagedAdminSocket
	packagedAdminSocket = packaged
	t.Cleanup(func() { packagedAdminSocket = old })
	t.Setenv("HOSTPLANE_ADMIN_SOCKET", "")
	t.Setenv("HOSTPLANE_DATA_DIR", filepath.Join(dir, "data")) // no admin.sock there
	if got := defaultAdminSocket(); got != packaged {
		t.Fatalf("defaultAdminSocket() = %q, want the packaged %q", got, packaged)
	}
	node := newNodeCmd()
	for _, path := range [][]string{{"token", "create"}, {"list"}, {"show"}, {"remove"}, {"cordon"}, {"uncordon"}, {"drain"}} {
		c, _, err := node.Find(path)
		if err != nil || c.Name() != path[len(path)-1] {
			t.Fatalf("node %v: %v", path, err)
		}
		f := c.Flags().Lookup("admin-socket")
		if f == nil || f.DefValue != packaged {
			t.Errorf("node %v: --admin-socket defaults to %v, want %q", path, f, packaged)
		}
	}
}

// TestCLIUsageExitCodes: what the package promises (0 on success, 1 on a
// failed request, 2 on bad usage) holds for the usage errors cobra finds
// itself: an unknown command or flag, a flag without its value or with one
// that does not parse, the wrong number of arguments exit 2 with the reason
// on stderr and nothing on stdout (before, they exited 1, like a coordinator
// that cannot be reached); a request that fails exits 1.
func TestCLIUsageExitCodes(t *testing.T) {
	bin := buildCtl(t)
	sock := []string{"--socket", filepath.Join(t.TempDir(), "no-coordinator.sock")}
	for _, tc := range []struct {
		args []string
		code int
		says string
	}{
		{[]string{"nosuchcmd"}, 2, "unknown command"},
		{[]string{"cluster", "status", "extra"}, 2, "extra"},
		{[]string{"key", "create", "--bogus", "acc_x"}, 2, "--bogus"},
		{[]string{"key", "create"}, 2, "arg"},
		{[]string{"key", "create", "acc_x", "acc_y"}, 2, "arg"},
		{[]string{"wallet", "credit", "acc_x", "--amount"}, 2, "--amount"},
		{[]string{"invoice", "issue", "acc_x", "--line", "a=1", "--due-days", "abc"}, 2, "--due-days"},
		{[]string{"key", "create", "acc_x", "--expires-in", "soon"}, 2, "--expires-in"},
		{[]string{"cluster", "status"}, 1, "no-coordinator.sock"},
		{[]string{"key", "create", "acc_x"}, 1, "no-coordinator.sock"},
	} {
		stdout, stderr, code := runCtl(t, bin, append(sock, tc.args...)...)
		if code != tc.code || !strings.Contains(stderr, tc.says) || stdout != "" {
			t.Errorf("%q: want exit %d with %q on stderr, nothing on stdout: exit %d, stdout %q, stderr %q", tc.args, tc.code, tc.says, code, stdout, stderr)
		}
	}
	if stdout, _, code := runCtl(t, bin, "key", "--help"); code != 0 || !strings.Contains(stdout, "create") {
		t.Errorf("key --help: exit %d %q", code, stdout)
	}
}

// TestUnknownSubcommand: a typo under a command group is bad usage (exit 2,
// the command named, a suggestion), not the group's help with exit 0; the
// group alone still prints its help. No coordinator is needed: the refusal
// comes before any call.
func TestUnknownSubcommand(t *testing.T) {
	bin := buildCtl(t)
	for _, tc := range []struct {
		args []string
		typo string
	}{{[]string{"account", "lst"}, "lst"}, {[]string{"node", "template", "lsit"}, "lsit"}, {[]string{"ticket", "clsoe", "TKT-1"}, "clsoe"}} {
		out, errOut, code := runCtl(t, bin, append(tc.args, "--socket", filepath.Join(t.TempDir(), "none.sock"))...)
		if code != 2 || out != "" || !strings.Contains(errOut, `unknown command "`+tc.typo+`"`) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 2 naming %q", tc.args, code, out, errOut, tc.typo)
		}
	}
	if _, errOut, _ := runCtl(t, bin, "account", "shw"); !strings.Contains(errOut, "Did you mean this?\n\tshow") {
		t.Errorf("account shw: no suggestion in %q", errOut)
	}
	if out, _, code := runCtl(t, bin, "account"); code != 0 || !strings.Contains(out, "Available Commands") {
		t.Errorf("account alone: exit %d, %q", code, out)
	}
}
