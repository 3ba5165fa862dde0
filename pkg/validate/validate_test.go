package validate

import (
	"errors"
	"regexp"
	"strings"
	"testing"
)

func TestName(t *testing.T) {
	good := []string{"a", "web-1", "0", strings.Repeat("a", 63), "a-"}
	bad := []string{"", "-a", "A", "a/b", "..", "a.b", "a b", "a'b", `a"b`, "<a>", "a&b", strings.Repeat("a", 64), "ä", "a\x00", "a\n"}
	for _, s := range good {
		if err := Name("vm", s); err != nil {
			t.Errorf("Name(%q) = %v", s, err)
		}
	}
	for _, s := range bad {
		if err := Name("vm", s); !errors.Is(err, ErrInvalid) {
			t.Errorf("Name(%q) accepted", s)
		}
	}
}

func TestPlan(t *testing.T) {
	l := DefaultLimits
	if err := Plan(l, 1, 128, 1); err != nil {
		t.Fatal(err)
	}
	for _, c := range [][3]uint64{{0, 128, 1}, {65, 128, 1}, {1, 0, 1}, {1, 1 << 40, 1}, {1, 128, 0}, {1, 128, 1 << 20}} {
		if err := Plan(l, uint32(c[0]), c[1], c[2]); !errors.Is(err, ErrInvalid) {
			t.Errorf("Plan(%v) accepted", c)
		}
	}
}

func TestSSHKey(t *testing.T) {
	ed := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHkLdvy1TyHQOhUjYZr36zB0sUeCCPdFHnB8WWf33Hlo me@host"
	if got, err := SSHKey("  " + ed + "  "); err != nil || got != ed {
		t.Fatalf("SSHKey = %q, %v", got, err)
	}
	bad := []string{"", "ssh-ed25519", "ssh-dss AAAAB3NzaC1kc3MAAACBAP", "ssh-ed25519 !!!", "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIHkLdvy1TyHQOhUjYZr36zB0sUeCCPdFHnB8WWf33Hlo",
		ed + "\nssh-ed25519 AAAA", `from="1.2.3.4" ` + ed, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5", ed + " \x01"}
	for _, k := range bad {
		if _, err := SSHKey(k); !errors.Is(err, ErrInvalid) {
			t.Errorf("SSHKey(%q) accepted", k)
		}
	}
}

func TestMisc(t *testing.T) {
	if m, err := MAC("52:54:00:AB:cd:01"); err != nil || m != "52:54:00:ab:cd:01" {
		t.Fatalf("MAC: %q %v", m, err)
	}
	for _, m := range []string{"01:00:5e:00:00:01", "52:54:00:ab:cd", "5254.00ab.cd01", "52-54-00-ab-cd-01"} {
		if _, err := MAC(m); err == nil {
			t.Errorf("MAC(%q) accepted", m)
		}
	}
	for _, n := range []string{"user", "network:default", "bridge:br0"} {
		if err := Network(n); err != nil {
			t.Errorf("Network(%q): %v", n, err)
		}
	}
	for _, n := range []string{"", "bridge:", "bridge:br0'/>", "tap:x", "network:" + strings.Repeat("a", 16)} {
		if err := Network(n); err == nil {
			t.Errorf("Network(%q) accepted", n)
		}
	}
	if err := Hostname("web-1.example.com"); err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"", "-a", "a_b", "a..b", strings.Repeat("a", 64)} {
		if err := Hostname(h); err == nil {
			t.Errorf("Hostname(%q) accepted", h)
		}
	}
	if err := IPv4CIDR("192.0.2.10/24", "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	if err := IPv4CIDR("192.0.2.10/24", "198.51.100.1"); err == nil {
		t.Fatal("gateway outside the subnet accepted")
	}
	for _, id := range []string{"", ".", "..", "a/b", strings.Repeat("x", 65), "a b"} {
		if err := OpID(id); err == nil {
			t.Errorf("OpID(%q) accepted", id)
		}
	}
	if _, err := SHA256Hex(strings.Repeat("A", 64)); err != nil {
		t.Fatal(err)
	}
	if err := Password("short"); err == nil {
		t.Fatal("short password accepted")
	}
}

func FuzzSSHKey(f *testing.F) {
	f.Add("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHkLdvy1TyHQOhUjYZr36zB0sUeCCPdFHnB8WWf33Hlo me@host")
	f.Add("ssh-rsa AAAA")
	f.Fuzz(func(t *testing.T, s string) {
		out, err := SSHKey(s)
		if err == nil && (strings.ContainsAny(out, "\n\r\x00") || !strings.HasPrefix(out, strings.Fields(out)[0])) {
			t.Fatalf("accepted %q as %q", s, out)
		}
	})
}

// TestTemplateName: the one template rule of the coordinator and the agent.
// It accepts the names operators use ("ubuntu-24.04") and refuses whatever
// could escape the volume or directory it names.
func TestTemplateName(t *testing.T) {
	good := []string{"debian-12", "ubuntu-24.04", "alma_9", "0", strings.Repeat("a", 63), "a-", "a.."}
	bad := []string{"", ".", "..", ".hidden", "-rf", "_x", "A", "Debian 12", "a/b", "../etc", "a\x00", "ä", strings.Repeat("a", 64)}
	for _, s := range good {
		if err := TemplateName(s); err != nil {
			t.Errorf("TemplateName(%q) = %v", s, err)
		}
	}
	for _, s := range bad {
		if err := TemplateName(s); !errors.Is(err, ErrInvalid) {
			t.Errorf("TemplateName(%q) accepted", s)
		}
	}
}

func TestNodeAndCoordinatorIDs(t *testing.T) {
	for _, s := range []string{"hv-07", "node1.dc1", "a_b", strings.Repeat("n", 63)} {
		if err := NodeID(s); err != nil {
			t.Errorf("NodeID(%q) = %v", s, err)
		}
		if err := CoordinatorID(s); err != nil {
			t.Errorf("CoordinatorID(%q) = %v", s, err)
		}
	}
	for _, s := range []string{"", "-a", ".a", "A", "a b", "a/b", strings.Repeat("n", 64)} {
		if err := NodeID(s); !errors.Is(err, ErrInvalid) {
			t.Errorf("NodeID(%q) accepted", s)
		}
	}
	// A coordinator id may be 64 characters and start with any allowed one.
	for _, s := range []string{strings.Repeat("c", 64), "-a", ".a"} {
		if err := CoordinatorID(s); err != nil {
			t.Errorf("CoordinatorID(%q) = %v", s, err)
		}
	}
	for _, s := range []string{"", "A", "a b", "a/b", strings.Repeat("c", 65)} {
		if err := CoordinatorID(s); !errors.Is(err, ErrInvalid) {
			t.Errorf("CoordinatorID(%q) accepted", s)
		}
	}
}

func TestSSHKeyLine(t *testing.T) {
	for _, k := range []string{"ssh-ed25519 AAAA x", "ecdsa-sha2-nistp256 AAAA", "sk-ssh-ed25519@openssh.com AAAA"} {
		if err := SSHKeyLine(k, 4096); err != nil {
			t.Errorf("SSHKeyLine(%q) = %v", k, err)
		}
	}
	for _, k := range []string{"", "hello", "ssh-rsa a\nb", "ssh-rsa a\tb", "ssh-rsa " + strings.Repeat("A", 4096)} {
		if err := SSHKeyLine(k, 4096); !errors.Is(err, ErrInvalid) {
			t.Errorf("SSHKeyLine(%q) accepted", k)
		}
	}
	// Every key the full check accepts passes the shape check.
	ed := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHkLdvy1TyHQOhUjYZr36zB0sUeCCPdFHnB8WWf33Hlo me@host"
	if _, err := SSHKey(ed); err != nil || SSHKeyLine(ed, 4096) != nil {
		t.Fatalf("a valid key: SSHKey %v, SSHKeyLine %v", err, SSHKeyLine(ed, 4096))
	}
	if r := Reason(SSHKeyLine("hello", 10)); strings.Contains(r, ErrInvalid.Error()) || r == "" {
		t.Fatalf("Reason kept the prefix: %q", r)
	}
}

func TestBridgeIPv6Resolvers(t *testing.T) {
	for _, b := range []string{"br0", "br-public", "vmbr0.100", strings.Repeat("b", 15)} {
		if err := Bridge(b); err != nil {
			t.Errorf("Bridge(%q): %v", b, err)
		}
	}
	for _, b := range []string{"", "-br", "br 0", "br/0", "br0'/>", strings.Repeat("b", 16)} {
		if err := Bridge(b); err == nil {
			t.Errorf("Bridge(%q) accepted", b)
		}
	}
	good := [][2]string{{"2001:db8:0:5::1/64", ""}, {"2001:db8:0:5::1/64", "fe80::1"}, {"2001:db8:0:5::1/64", "2001:db8:0:5::fffe"}, {"2001:db8::10/128", ""},
		{"2001:db8:0:5::1/64", "2001:db8::1"}} // a pool gateway outside the server's /64
	for _, g := range good {
		if err := IPv6CIDR(g[0], g[1]); err != nil {
			t.Errorf("IPv6CIDR(%q, %q): %v", g[0], g[1], err)
		}
	}
	bad := [][2]string{{"", "fe80::1"}, {"2001:db8::1", ""}, {"198.51.100.1/24", ""}, {"::ffff:198.51.100.1/120", ""},
		{"fe80::1/64", ""}, {"::1/128", ""}, {"ff02::1/64", ""}, {"2001:db8::1/0", ""}, {"2001:db8:0:5::1/64", "ff02::2"}, {"2001:db8:0:5::1/64", "::"},
		{"2001:db8:0:5::1/64", "198.51.100.1"}, {"2001:db8:0:5::1/64", "fe80::1%eth0"}, {"2001:db8:0:5::1%eth0/64", ""}}
	for _, b := range bad {
		if err := IPv6CIDR(b[0], b[1]); err == nil || !errors.Is(err, ErrInvalid) {
			t.Errorf("IPv6CIDR(%q, %q) accepted", b[0], b[1])
		}
	}
	rs, err := Resolvers([]string{"198.51.100.53", "2001:DB8::53"})
	if err != nil || rs[0] != "198.51.100.53" || rs[1] != "2001:db8::53" {
		t.Fatalf("Resolvers: %v %v", rs, err)
	}
	for _, r := range [][]string{{"dns.example"}, {"0.0.0.0"}, {"ff02::1"}, {"fe80::1%eth0"}, make([]string, MaxResolvers+1)} {
		if _, err := Resolvers(r); err == nil {
			t.Errorf("Resolvers(%q) accepted", r)
		}
	}
}

// TestStaticAddressNone: no static address (DHCP, or no IPv6) is valid
// without a gateway; a gateway given without its address is refused, the
// message naming the gateway field.
func TestStaticAddressNone(t *testing.T) {
	for _, c := range []struct {
		name  string
		check func(addr, gw string) error
		gw    string
		want  string
	}{
		{"IPv4CIDR", IPv4CIDR, "192.0.2.1", "gateway given without an address"},
		{"IPv6CIDR", IPv6CIDR, "fe80::1", "gateway6 given without an ipv6 address"},
	} {
		if err := c.check("", ""); err != nil {
			t.Errorf("%s(\"\", \"\"): %v", c.name, err)
		}
		if err := c.check("", c.gw); !errors.Is(err, ErrInvalid) || !strings.HasSuffix(err.Error(), c.want) {
			t.Errorf("%s(\"\", %q): %v, want ErrInvalid ending %q", c.name, c.gw, err, c.want)
		}
	}
}

// FuzzHandWrittenRules holds isLabel and isID to the regular expressions
// they write out, and Hostname to the rule as it was written with them
// (the labels strings.Split gives, each matching the label expression).
func FuzzHandWrittenRules(f *testing.F) {
	labelRE := regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	idRE := regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)
	hostname := func(s string) bool {
		if s == "" || len(s) > MaxHostname {
			return false
		}
		for _, l := range strings.Split(s, ".") {
			if !labelRE.MatchString(l) {
				return false
			}
		}
		return true
	}
	for _, s := range []string{"", "a", "-", "a-", "-a", "a-b", "web-1.example.com", "debian-12", "ubuntu-24.04", "_x", "x_", ".", "a..b", "a.", ".a",
		"A", "a\n", "\na", "é", strings.Repeat("a", 63), strings.Repeat("a", 64), strings.Repeat("a.", 127), strings.Repeat("a", 63) + "." + strings.Repeat("b", 64)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := isLabel(s), labelRE.MatchString(s); got != want {
			t.Fatalf("isLabel(%q) = %v, the expression says %v", s, got, want)
		}
		if got, want := isID(s), idRE.MatchString(s); got != want {
			t.Fatalf("isID(%q) = %v, the expression says %v", s, got, want)
		}
		if got, want := Hostname(s) == nil, hostname(s); got != want {
			t.Fatalf("Hostname(%q) accepts: %v, the rule says %v", s, got, want)
		}
	})
}

// TestPublicHost: a host name or an IP address without a zone; a zoned
// address is refused saying so.
func TestPublicHost(t *testing.T) {
	// Loopback passes on purpose (a single machine: make run, the rigs).
	for _, h := range []string{"sftp.example.net", "localhost", "192.0.2.7", "2001:db8::7", "::ffff:192.0.2.7", "127.0.0.1", "::1"} {
		if err := PublicHost(h); err != nil {
			t.Errorf("PublicHost(%q): %v", h, err)
		}
	}
	for _, h := range []string{"", "fe80::1%eth0", "fe80::1%25eth0", "Sftp.Example.net", "-x.example", "a b", "sftp.example.net.",
		"0.0.0.0", "::", "::ffff:0.0.0.0", "224.0.0.1", "ff02::1"} {
		err := PublicHost(h)
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("PublicHost(%q) = %v, want ErrInvalid", h, err)
		}
	}
	if err := PublicHost("fe80::1%eth0"); err == nil || !strings.Contains(err.Error(), "zone") {
		t.Errorf("a zoned address: %v, want a reason naming the zone", err)
	}
}
