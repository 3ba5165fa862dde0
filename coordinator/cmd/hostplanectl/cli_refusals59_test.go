package main

import (
	"slices"
	"strings"
	"testing"
)

// TestCLIRefusalsChangeNothing (probe59) runs the built hostplanectl
// against a real coordinator with command lines a careless operator types
// that TestCLIErrorsNameTheFlag and TestCLIInputRefusals do not: required
// flags or arguments left out, values of the wrong kind for a typed flag
// (text for a number, a fraction, a number beyond its type, a negative size
// for an unsigned one, a bad duration), values outside the command's enum,
// unknown flags and extra arguments, ids that name nothing. Each exits
// non-zero, prints nothing on stdout, names the flag, argument or id on
// stderr, and afterwards the coordinator holds what it held: the accounts'
// keys, wallet and invoices, the catalogue, the pools, servers, hosting
// accounts and tickets, as the CLI's own --json lists show them.
func TestCLIRefusalsChangeNothing(t *testing.T) {
	_, g, _, acc, bin := ctlCluster(t, "refusals59@example.com")
	sock := []string{"--socket", g.socket}
	A := acc.ID
	state := func() string {
		t.Helper()
		var b strings.Builder
		for _, l := range [][]string{{"key", "list", A}, {"product", "list"}, {"ip-pool", "list"}, {"server", "list"}, {"hosting", "list"},
			{"ticket", "list"}, {"account", "show", A}, {"reverse-zone", "list"}} {
			stdout, stderr, code := runCtl(t, bin, append(append(slices.Clone(sock), "--json"), l...)...)
			if code != 0 {
				t.Fatalf("%v: exit %d, %s", l, code, stderr)
			}
			b.WriteString(strings.Join(l, " ") + ": " + stdout + "\n")
		}
		return b.String()
	}
	before := state()
	vps := []string{"product", "create", "p59", "--category", "vps", "--name", "X", "--price", "100", "--vcpu", "1", "--ram-mb", "256", "--disk-gb", "1"}
	pool := []string{"ip-pool", "create", "p59", "--cidr", "198.51.100.0/24", "--gateway", "198.51.100.1"}
	with := func(base []string, more ...string) []string { return append(slices.Clone(base), more...) }
	without := func(base []string, flag string) []string {
		i := slices.Index(base, flag)
		return slices.Concat(base[:i], base[i+2:])
	}
	for _, tc := range []struct {
		args []string
		name string // what stderr names
	}{
		// Required flags and arguments left out.
		{[]string{"server", "create", "--plan", "nano", "--template", "debian-12"}, "--account"},
		{[]string{"server", "create", "--account", A, "--template", "debian-12"}, "--plan"},
		{[]string{"server", "create", "--account", A, "--plan", "nano"}, "--template"},
		{[]string{"hosting", "create", "--account", A, "--plan", "hosting-starter", "--domain", "r59.example"}, "--username"},
		{[]string{"wallet", "credit", A}, "--amount"},
		{[]string{"account", "create"}, "--email"},
		{without(pool, "--cidr"), "--cidr"},
		{[]string{"key", "create"}, "missing argument ACCOUNT_ID"},
		{[]string{"ticket", "reply", "tkt_01m8y5pc00y7dajqfjq7d8j44t"}, "--body"},
		// A typed flag given another kind of value.
		{with(vps, "--price", "abc"), "--price"},
		{with(vps, "--vcpu", "1.5"), "--vcpu"},
		{with(vps, "--vcpu", "-1"), "--vcpu"},
		{with(vps, "--ram-mb", "99999999999999999999999"), "--ram-mb"},
		{with(vps, "--disk-gb", "-5"), "--disk-gb"},
		{with(pool, "--quarantine", "forever"), "--quarantine"},
		{with(pool, "--prefix-len", "x"), "--prefix-len"},
		{[]string{"wallet", "credit", A, "--amount", "abc"}, "--amount"},
		{[]string{"wallet", "credit", A, "--amount", "0"}, "--amount"},
		{[]string{"key", "create", A, "--expires-in", "soon"}, "--expires-in"},
		// Outside the enum; unknown flags; an argument too many.
		{[]string{"ticket", "status", "tkt_01m8y5pc00y7dajqfjq7d8j44t", "bogus"}, "STATUS"},
		{with(vps, "--bogus", "1"), "--bogus"},
		{[]string{"wallet", "credit", A, "extra", "--amount", "1"}, `unexpected argument "extra"`},
		{[]string{"account", "create", "--email", "r59@example.com", "extra"}, `unexpected argument "extra"`},
		// Ids that name nothing.
		{[]string{"account", "show", "acc_01nosuchaccount0000000000"}, "404 Not Found: account not found"}, // the one id typed
		{[]string{"wallet", "credit", "acc_01nosuchaccount0000000000", "--amount", "1"}, "acc_01nosuchaccount0000000000"},
		{[]string{"key", "create", "acc_01nosuchaccount0000000000"}, "acc_01nosuchaccount0000000000"},
		{[]string{"server", "show", "srv_01nosuchserver000000000000"}, "srv_01nosuchserver000000000000"},
	} {
		stdout, stderr, code := runCtl(t, bin, append(slices.Clone(sock), tc.args...)...)
		if code == 0 || stdout != "" || !strings.Contains(stderr, tc.name) {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want a non-zero exit naming %s on stderr and nothing on stdout", tc.args, code, stdout, stderr, tc.name)
		}
	}
	if after := state(); after != before {
		t.Errorf("the refused command lines changed the coordinator:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}
