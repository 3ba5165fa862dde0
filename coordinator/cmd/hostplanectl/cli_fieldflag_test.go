package main

import (
	"slices"
	"strings"
	"testing"
)

// TestFieldFlagsNameRealFlags: every flag or argument fieldFlags names is
// one of its command's (a renamed flag would otherwise be named in errors
// that no longer apply).
func TestFieldFlagsNameRealFlags(t *testing.T) {
	started := false
	tree := leaves(newRootCmd(&globals{}, &started), nil)
	for path, pairs := range fieldFlags {
		c, ok := tree[path]
		if !ok {
			t.Errorf("fieldFlags names the command %q, which is not one", path)
			continue
		}
		for _, p := range strings.Fields(pairs) {
			_, flag, _ := strings.Cut(p, "=")
			if name, ok := strings.CutPrefix(flag, "--"); ok {
				if c.Flags().Lookup(name) == nil {
					t.Errorf("%s: fieldFlags names %s, not a flag of it", path, flag)
				}
			} else if !slices.Contains(argNames(c.Use), flag) {
				t.Errorf("%s: fieldFlags names %s, not an argument of %q", path, flag, c.Use)
			}
		}
	}
}

// TestCLIErrorsNameTheFlag runs the hostplanectl binary against a real
// coordinator with values the coordinator refuses (400 naming its request's
// field): each exits 2 with stderr starting with the flag or argument the
// operator typed, the coordinator's message after it, nothing on stdout.
// Before, the message named the API field only ('field
// "retail_monthly_usd_cents"' for --price, '"expires_at"' for --expires-in,
// '"specs.hosting" specs.hosting.php_workers' for --php-workers,
// '"staff_name"' for --as, '"id"' for NODE_ID).
func TestCLIErrorsNameTheFlag(t *testing.T) {
	c, g, _, acc, bin := ctlCluster(t, "fieldflags@example.com")
	t.Chdir(t.TempDir())
	sock := []string{"--socket", g.socket}
	A := acc.ID
	vps := []string{"product", "create", "pz", "--category", "vps", "--name", "X", "--price", "100", "--vcpu", "1", "--ram-mb", "256", "--disk-gb", "1"}
	web := []string{"product", "create", "pw", "--category", "hosting", "--name", "X", "--price", "100"}
	hosting := []string{"hosting", "create", "--account", A, "--plan", "hosting-starter", "--domain", "ff.example", "--username", "ffuser"}
	server := []string{"server", "create", "--account", A, "--plan", "nano", "--template", "debian-12"}
	pool := []string{"ip-pool", "create", "pf", "--cidr", "198.51.100.0/24", "--gateway", "198.51.100.1"}
	with := func(base []string, more ...string) []string { return append(slices.Clone(base), more...) }
	for _, tc := range []struct {
		args []string
		flag string
	}{
		{with(vps, "--price", "99999999999"), "--price"}, {with(vps, "--vcpu", "99999"), "--vcpu"}, {with(vps, "--ram-mb", "99999999999"), "--ram-mb"},
		{with(vps, "--disk-gb", "999999999"), "--disk-gb"}, {with(vps, "--name-in", "tr="), "--name-in"}, {with(vps, "--tld", "com"), "--tld"},
		{with(vps, "--yearly-price", "5"), "--yearly-price"}, {with(vps, "--name", "X\x1b[31m"), "--name"}, {with(vps, "--category", "bogus"), "--category"},
		{[]string{"product", "create", "p;x", "--category", "vps", "--name", "X", "--price", "100", "--vcpu", "1", "--ram-mb", "256", "--disk-gb", "1"}, "SLUG"},
		{with(web, "--php-workers", "0"), "--php-workers"}, {with(web, "--php-memory-mib", "-1"), "--php-memory-mib"},
		{with(web, "--max-execution-seconds", "0"), "--max-execution-seconds"}, {with(web, "--upload-mib", "-1"), "--upload-mib"}, {with(web, "--disk-mib", "0"), "--disk-mib"},
		{[]string{"key", "create", A, "--expires-in", "1ns"}, "--expires-in"}, {[]string{"key", "create", A, "--rate-limit", "-1"}, "--rate-limit"},
		{[]string{"key", "create", A, "--allow-ip", "10.0.0.0/33"}, "--allow-ip"},
		{with(pool[:2], "p;1", "--cidr", "198.51.100.0/24", "--gateway", "198.51.100.1"), "NAME"}, {with(pool[:3], "--cidr", "bad", "--gateway", "198.51.100.1"), "--cidr"},
		{with(pool[:5], "--gateway", "203.0.113.1"), "--gateway"}, {with(pool, "--quarantine", "1000000h"), "--quarantine"}, {with(pool, "--prefix-len", "64"), "--prefix-len"},
		{with(pool, "--nodes", "a;b"), "--nodes"}, {with(pool, "--exclude", "203.0.113.5"), "--exclude"},
		{[]string{"invoice", "issue", A, "--line", "Disk=10001x1.00"}, "--line"}, {[]string{"invoice", "issue", A, "--line", "Disk=1.00", "--due-days", "366"}, "--due-days"},
		{[]string{"wallet", "credit", A, "--amount", "1", "--description", strings.Repeat("d", 501)}, "--description"},
		{[]string{"account", "create", "--email", "nope"}, "--email"}, {[]string{"account", "create", "--email", "ff2@example.com", "--country", "TUR"}, "--country"},
		{[]string{"account", "create", "--email", "ff3@example.com", "--country", "XX"}, "--country"},
		{[]string{"account", "pricing", A, "--price", "nosuch=5"}, "--price"},
		{[]string{"cluster", "join", "C9", "127.0.0.1:1"}, "NODE_ID"}, {[]string{"cluster", "join", "c9", "127.0.0.1:99999"}, "RAFT_ADDR"},
		{[]string{"cluster", "join", "c9", "127.0.0.1:1", "--api-addr", "bad addr"}, "--api-addr"}, {[]string{"cluster", "remove", "C;x"}, "NODE_ID"},
		{[]string{"cluster", "transfer-leadership", "--to", "nosuch"}, "--to"},
		{with(hosting[:4], "--plan", "nosuch", "--domain", "ff.example", "--username", "ffuser"), "--plan"}, {with(hosting[:6], "--domain", "ff.example;x", "--username", "ffuser"), "--domain"},
		{with(hosting[:8], "--username", "a;b"), "--username"}, {with(hosting, "--php", "8.2;id"), "--php"}, {with(hosting, "--node", "../x"), "--node"},
		{with(server, "--ipv4", "bad"), "--ipv4"}, {with(server, "--os", "windows"), "--os"}, {with(server, "--os", "debian;x"), "--os"}, {with(server[:4], "--plan", "nosuch", "--template", "debian-12"), "--plan"},
		{[]string{"hosting", "suspend", "hst_01m8y5pc00y7dajqfjq7d8j44t", "--reason", "a\x1b[2Jb"}, "--reason"},
		{[]string{"server", "suspend", "srv_01m8y5pc00y7dajqfjq7d8j44t", "--reason", "a\x1b[2Jb"}, "--reason"},
		{[]string{"ticket", "reply", "tkt_01m8y5pc00y7dajqfjq7d8j44t", "--body", "x", "--as", "a\x1b[2J"}, "--as"},
		{[]string{"template", "label", "debian-12", "--family", strings.Repeat("f", 33)}, "--family"},
		{[]string{"reverse-zone", "add", "example.com"}, "ZONE"}, {[]string{"reverse-zone", "add", "100.51.198.in-addr.arpa", "--pool", "nosuch"}, "--pool"},
		{[]string{"oauth", "approve", "NOPE", "--account", A}, "USER_CODE"},
		// One-line fields: a line break, a tab or another control character.
		{[]string{"key", "create", A, "--name", "a\nb"}, "--name"}, {[]string{"account", "create", "--email", "ff4@example.com", "--name", "a\tb"}, "--name"},
		{[]string{"wallet", "credit", A, "--amount", "1", "--description", "a\nb"}, "--description"},
		{[]string{"wallet", "credit", A, "--amount", "1", "--gateway", "a\u2028b"}, "--gateway"},
		{[]string{"invoice", "issue", A, "--line", "Disk\r\nX=1.00"}, "--line"}, {with(vps, "--name", "X\nY"), "--name"},
		{[]string{"ticket", "reply", "tkt_01m8y5pc00y7dajqfjq7d8j44t", "--body", "x", "--as", "a\nb"}, "--as"},
		{[]string{"ip-pool", "reserve", "pf", "198.51.100.9", "--note", "a\u0085b"}, "--note"},
		{[]string{"server", "suspend", "srv_01m8y5pc00y7dajqfjq7d8j44t", "--reason", "a\tb"}, "--reason"},
	} {
		stdout, stderr, code := runCtl(t, bin, append(slices.Clone(sock), tc.args...)...)
		if code != 2 || stdout != "" || !strings.HasPrefix(stderr, "error: "+tc.flag+": ") || !strings.Contains(stderr, "400 Bad Request") {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit 2, stderr starting with %s and the coordinator's 400", tc.args, code, stdout, stderr, tc.flag)
		}
	}
	// An argument no path segment may hold is refused by the client
	// before anything is sent (pkg/client ErrBadPathValue), named the
	// same way. Before, "template label ../x" reached the coordinator
	// (its 400), and an id of "a/b" was sent escaped.
	for _, tc := range []struct {
		args []string
		flag string
	}{
		{[]string{"template", "label", "../x", "--family", "debian"}, "NAME"},
		{[]string{"server", "suspend", "srv_a/b", "--reason", "r"}, "ID"},
		{[]string{"hosting", "suspend", "hst_1?x", "--reason", "r"}, "ID"},
		{[]string{"account", "show", "a?b"}, "ACCOUNT_ID|EMAIL"},
		{[]string{"ticket", "reply", "tkt_1#x", "--body", "b"}, "TICKET_ID"},
	} {
		stdout, stderr, code := runCtl(t, bin, append(slices.Clone(sock), tc.args...)...)
		if code != 2 || stdout != "" || !strings.HasPrefix(stderr, "error: "+tc.flag+": client: ") || !strings.Contains(stderr, "{") {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit 2, stderr starting with %s and the client's refusal", tc.args, code, stdout, stderr, tc.flag)
		}
	}
	// A refusal that is not a 400 is left as it is.
	if _, stderr, code := runCtl(t, bin, append(slices.Clone(sock), "product", "update", "nosuch", "--price", "5")...); code != 1 || !strings.HasPrefix(stderr, "error: 404 Not Found") {
		t.Errorf("product update nosuch: exit %d, %q", code, stderr)
	}
	_ = c
}
