package eppd

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/internal/eppxml"
)

// TestGlueInBailiwick: as a real registry, the test registry takes a name
// server inside a domain of its own only with glue addresses: a hostAttr
// inside the domain being created or updated, or inside another of its
// domains, without hostAddr is a 2003 (nothing created); glue for a host
// outside them is a 2306; a host object inside the domain being created
// (made before it, so without addresses) is a 2003. Before, ns1.g.test was taken for g.test with no address
// at all, so a registrar that sent it looked registered here and would be
// refused by a real registry.
func TestGlueInBailiwick(t *testing.T) {
	r := start(t, nil)
	c := r.dial(t)
	c.login(testID, testPW)
	withNS := func(name string, hs ...eppxml.HostAttr) *eppxml.Command {
		d := create(name)
		d.Create.Domain.NS = &eppxml.NS{HostAttr: hs}
		return d
	}
	v4 := eppxml.HostAddr{IP: "v4", Addr: "192.0.2.53"}
	for _, c2 := range []struct {
		cmd  *eppxml.Command
		want int
		what string
	}{
		{withNS("g.test", eppxml.HostAttr{HostName: "ns1.g.test"}, eppxml.HostAttr{HostName: "ns2.dns.example"}), eppxml.CodeParamMissing, "in-bailiwick hostAttr without glue"},
		{withNS("g.test", eppxml.HostAttr{HostName: "g.test"}), eppxml.CodeParamMissing, "the domain itself without glue"},
		{withNS("g.test", eppxml.HostAttr{HostName: "ns1.dns.example", HostAddr: []eppxml.HostAddr{v4}}), eppxml.CodePolicy, "glue outside"},
		{withNS("g.test", eppxml.HostAttr{HostName: "ns1.g.test", HostAddr: []eppxml.HostAddr{{IP: "v6", Addr: "192.0.2.1"}}}), eppxml.CodeValueSyntax, "a v4 address marked v6"},
		// A host object made before its domain (so without addresses) is
		// taken as a host, but not as the new domain's name server.
		{&eppxml.Command{Create: &eppxml.CreateCmd{Host: &eppxml.HostCreate{Name: "ns0.g.test"}}}, 1000, "host object before its domain"},
		{func() *eppxml.Command {
			d := create("g.test")
			d.Create.Domain.NS = &eppxml.NS{HostObj: []string{"ns0.g.test"}}
			return d
		}(), eppxml.CodeParamMissing, "in-bailiwick host object without glue"},
	} {
		if code, _, _ := c.cmd(c2.cmd); code != c2.want {
			t.Errorf("%s: %d, want %d", c2.what, code, c2.want)
		}
	}
	if code, _, _ := c.cmd(&eppxml.Command{Info: &eppxml.InfoCmd{Domain: &eppxml.DomainInfo{Name: eppxml.HostsName{Name: "g.test"}}}}); code != eppxml.CodeNotExist {
		t.Fatalf("a refused create created g.test: %d", code)
	}
	if code, _, _ := c.cmd(withNS("g.test", eppxml.HostAttr{HostName: "ns1.g.test", HostAddr: []eppxml.HostAddr{v4}}, eppxml.HostAttr{HostName: "ns2.dns.example"})); code != 1000 {
		t.Fatalf("in-bailiwick hostAttr with glue: %d", code)
	}
	// Another domain's name server inside g.test needs its glue too; one
	// outside every domain here (under .test, not registered) needs none.
	if code, _, _ := c.cmd(withNS("h.test", eppxml.HostAttr{HostName: "ns1.g.test"})); code != eppxml.CodeParamMissing {
		t.Fatalf("a name server inside another domain of the registry without glue: %d, want 2003", code)
	}
	if code, _, _ := c.cmd(withNS("h.test", eppxml.HostAttr{HostName: "ns1.unregistered.test"}, eppxml.HostAttr{HostName: "ns1.dns.example"})); code != 1000 {
		t.Fatalf("name servers outside the registry's domains: %d", code)
	}
	add := func(name string, hs ...eppxml.HostAttr) *eppxml.Command {
		return &eppxml.Command{Update: &eppxml.UpdateCmd{Domain: &eppxml.DomainUpdate{Name: name, Add: &eppxml.DomainAddRem{NS: &eppxml.NS{HostAttr: hs}}}}}
	}
	if code, _, _ := c.cmd(add("h.test", eppxml.HostAttr{HostName: "ns2.h.test"})); code != eppxml.CodeParamMissing {
		t.Fatalf("update adding an in-bailiwick name server without glue: %d, want 2003", code)
	}
	if code, _, _ := c.cmd(add("h.test", eppxml.HostAttr{HostName: "ns2.h.test", HostAddr: []eppxml.HostAddr{{IP: "v6", Addr: "2001:db8::53"}}})); code != 1000 {
		t.Fatalf("update adding an in-bailiwick name server with glue: %d", code)
	}
	// Now that g.test exists, its host object takes its glue.
	if code, _, _ := c.cmd(&eppxml.Command{Create: &eppxml.CreateCmd{Host: &eppxml.HostCreate{Name: "ns3.g.test", Addr: []eppxml.HostAddr{v4}}}}); code != 1000 {
		t.Fatalf("host object with glue under its registered domain: %d", code)
	}
}

// TestHostObjectLifecycle: a registrar keeps a host object's glue at the
// test registry as at a real one (RFC 5732): host:info shows its addresses
// and "linked" while a domain delegates to it; host:update adds and removes
// addresses (a host under a domain of the registry keeps one: 2003; an
// address it lacks: 2306; a new name or a status: 2102, nothing changed); host:delete is refused while a domain delegates
// to it (2305) and deletes it after; a repeated clTRID answers the first
// answer. Before, host:info/update/delete were 2101 (unimplemented).
func TestHostObjectLifecycle(t *testing.T) {
	r := start(t, nil)
	c := r.dial(t)
	c.login(testID, testPW)
	if code, _, _ := c.cmd(create("g.test")); code != 1000 {
		t.Fatalf("create g.test: %d", code)
	}
	v4 := eppxml.HostAddr{IP: "v4", Addr: "192.0.2.53"}
	v6 := eppxml.HostAddr{IP: "v6", Addr: "2001:db8::53"}
	if code, _, _ := c.cmd(&eppxml.Command{Create: &eppxml.CreateCmd{Host: &eppxml.HostCreate{Name: "ns1.g.test", Addr: []eppxml.HostAddr{v4}}}}); code != 1000 {
		t.Fatalf("host create: %d", code)
	}
	info := func() *eppxml.HostInfData {
		t.Helper()
		code, _, resp := c.cmd(&eppxml.Command{Info: &eppxml.InfoCmd{Host: &eppxml.DomainName{Name: "NS1.g.test"}}})
		if code != 1000 || resp.ResData == nil || resp.ResData.HostInf == nil {
			t.Fatalf("host info: %d", code)
		}
		return resp.ResData.HostInf
	}
	upd := func(add, rem []eppxml.HostAddr) *eppxml.Command {
		u := &eppxml.HostUpdate{Name: "ns1.g.test"}
		if add != nil {
			u.Add = &eppxml.HostAddRem{Addr: add}
		}
		if rem != nil {
			u.Rem = &eppxml.HostAddRem{Addr: rem}
		}
		return &eppxml.Command{Update: &eppxml.UpdateCmd{Host: u}}
	}
	swap := upd([]eppxml.HostAddr{v6}, []eppxml.HostAddr{v4})
	swap.ClTRID = "swap-1"
	for _, s := range []struct {
		cmd  *eppxml.Command
		want int
		what string
	}{
		{upd(nil, []eppxml.HostAddr{v4}), eppxml.CodeParamMissing, "removing the last glue address of an in-registry host"},
		{upd(nil, []eppxml.HostAddr{{IP: "v4", Addr: "192.0.2.99"}}), eppxml.CodePolicy, "removing an address the host lacks"},
		{upd([]eppxml.HostAddr{v4}, nil), eppxml.CodePolicy, "adding an address twice"},
		{upd([]eppxml.HostAddr{{IP: "v4", Addr: "2001:db8::1"}}, nil), eppxml.CodeValueSyntax, "a v6 address marked v4"},
		{&eppxml.Command{Update: &eppxml.UpdateCmd{Host: &eppxml.HostUpdate{Name: "ns1.g.test", Chg: &eppxml.HostChg{Name: "ns9.g.test"}}}}, eppxml.CodeUnimplOption, "a new name"},
		{&eppxml.Command{Update: &eppxml.UpdateCmd{Host: &eppxml.HostUpdate{Name: "ns1.g.test",
			Add: &eppxml.HostAddRem{Status: []eppxml.Status{{S: "clientUpdateProhibited"}}}}}}, eppxml.CodeUnimplOption, "a status"},
		{swap, 1000, "swapping v4 for v6"},
	} {
		if code, _, _ := c.cmd(s.cmd); code != s.want {
			t.Errorf("%s: %d, want %d", s.what, code, s.want)
		}
	}
	if inf := info(); len(inf.Addr) != 1 || inf.Addr[0] != v6 || slices.ContainsFunc(inf.Status, func(s eppxml.Status) bool { return s.S == "linked" }) {
		t.Fatalf("after the swap: %+v", inf)
	}
	// The same clTRID again answers as first, and changes nothing.
	again := upd([]eppxml.HostAddr{v6}, []eppxml.HostAddr{v4})
	again.ClTRID = "swap-1"
	if code, _, _ := c.cmd(again); code != 1000 || len(info().Addr) != 1 {
		t.Fatalf("the swap repeated: %d, %+v", code, info())
	}
	d := create("h.test")
	d.Create.Domain.NS = &eppxml.NS{HostObj: []string{"ns1.g.test"}}
	if code, _, _ := c.cmd(d); code != 1000 {
		t.Fatalf("h.test delegated to ns1.g.test: %d", code)
	}
	if inf := info(); !slices.ContainsFunc(inf.Status, func(s eppxml.Status) bool { return s.S == "linked" }) {
		t.Fatalf("a delegated host is not linked: %+v", inf)
	}
	del := &eppxml.Command{Delete: &eppxml.DeleteCmd{Host: &eppxml.DomainName{Name: "ns1.g.test"}}}
	if code, _, _ := c.cmd(del); code != eppxml.CodeAssocProhibits {
		t.Fatalf("delete of a linked host: %d, want 2305", code)
	}
	rem := &eppxml.Command{Update: &eppxml.UpdateCmd{Domain: &eppxml.DomainUpdate{Name: "h.test", Rem: &eppxml.DomainAddRem{NS: &eppxml.NS{HostObj: []string{"ns1.g.test"}}}}}}
	if code, _, _ := c.cmd(rem); code != 1000 {
		t.Fatalf("removing the delegation: %d", code)
	}
	del = &eppxml.Command{Delete: &eppxml.DeleteCmd{Host: &eppxml.DomainName{Name: "ns1.g.test"}}}
	if code, _, _ := c.cmd(del); code != 1000 {
		t.Fatalf("delete of an unlinked host: %d", code)
	}
	if code, _, _ := c.cmd(&eppxml.Command{Info: &eppxml.InfoCmd{Host: &eppxml.DomainName{Name: "ns1.g.test"}}}); code != eppxml.CodeNotExist {
		t.Fatalf("info of a deleted host: %d", code)
	}
}

// TestSubordinateHosts: a domain's subordinate host objects (its child name
// servers) as RFC 5731 says: domain:info lists them (<domain:host>) to an
// authorized client under hosts="all" or "sub", not under "del" or "none"
// (a value outside the four is a 2005); domain:delete is refused (2305,
// naming them) while they exist; a transfer moves them to the gaining
// registrar, which can then change and delete them (the loser no longer
// can) and then delete the domain. Before, info listed no host and the
// delete left the hosts without their domain.
func TestSubordinateHosts(t *testing.T) {
	r := start(t, func(c *Config) {
		c.TransferPending = time.Hour
		c.Clients = map[string]string{testID: testPW, "reg-b": "secret-b1"}
	})
	a, b := r.dial(t), r.dial(t)
	a.login(testID, testPW)
	b.login("reg-b", "secret-b1")
	mk := create("s.test")
	mk.Create.Domain.NS = &eppxml.NS{HostAttr: []eppxml.HostAttr{{HostName: "ns1.dns.example"}, {HostName: "ns2.dns.example"}}}
	if code, _, _ := a.cmd(mk); code != 1000 {
		t.Fatalf("create s.test: %d", code)
	}
	v4 := eppxml.HostAddr{IP: "v4", Addr: "192.0.2.53"}
	for _, h := range []string{"ns2.s.test", "ns1.s.test"} {
		if code, _, _ := a.cmd(&eppxml.Command{Create: &eppxml.CreateCmd{Host: &eppxml.HostCreate{Name: h, Addr: []eppxml.HostAddr{v4}}}}); code != 1000 {
			t.Fatalf("host create %s: %d", h, code)
		}
	}
	info := func(c *conn, hosts string) (int, *eppxml.DomainInfData) {
		t.Helper()
		code, _, resp := c.cmd(&eppxml.Command{Info: &eppxml.InfoCmd{Domain: &eppxml.DomainInfo{Name: eppxml.HostsName{Hosts: hosts, Name: "s.test"}}}})
		if resp.ResData == nil {
			return code, nil
		}
		return code, resp.ResData.DomainInf
	}
	both := []string{"ns1.s.test", "ns2.s.test"}
	for _, c := range []struct {
		hosts string
		ns    bool
		subs  []string
	}{{"", true, both}, {"all", true, both}, {"sub", false, both}, {"del", true, nil}, {"none", false, nil}} {
		code, inf := info(a, c.hosts)
		if code != 1000 || (inf.NS != nil) != c.ns || !slices.Equal(inf.Host, c.subs) {
			t.Errorf("info hosts=%q: %d, ns %v, hosts %v; want ns %v, hosts %v", c.hosts, code, inf.NS, inf.Host, c.ns, c.subs)
		}
		if code, inf := info(b, c.hosts); code != 1000 || inf.Host != nil {
			t.Errorf("info hosts=%q by another registrar: %d, hosts %v", c.hosts, code, inf.Host)
		}
	}
	if code, _ := info(a, "bogus"); code != eppxml.CodeValueSyntax {
		t.Errorf("info hosts=bogus: %d, want 2005", code)
	}
	del := func() *eppxml.Command {
		return &eppxml.Command{Delete: &eppxml.DeleteCmd{Domain: &eppxml.DomainName{Name: "s.test"}}}
	}
	if code, msg, _ := a.cmd(del()); code != eppxml.CodeAssocProhibits || !strings.Contains(msg, "ns1.s.test, ns2.s.test") {
		t.Fatalf("delete of a domain with subordinate hosts: %d %q, want 2305 naming them", code, msg)
	}
	if code, _ := info(a, ""); code != 1000 {
		t.Fatalf("a refused delete deleted s.test: %d", code)
	}
	trn := func(c *conn, op, auth string) int {
		dt := &eppxml.DomainTransfer{Name: "s.test"}
		if auth != "" {
			dt.AuthInfo = &eppxml.AuthInfo{PW: auth}
		}
		code, _, _ := c.cmd(&eppxml.Command{Transfer: &eppxml.TransferCmd{Op: op, Domain: dt}})
		return code
	}
	if code := trn(b, "request", "auth-code-1"); code != eppxml.CodePending {
		t.Fatalf("transfer request: %d", code)
	}
	if code := trn(a, "approve", ""); code != 1000 {
		t.Fatalf("transfer approve: %d", code)
	}
	hostDel := func(c *conn, h string) int {
		code, _, _ := c.cmd(&eppxml.Command{Delete: &eppxml.DeleteCmd{Host: &eppxml.DomainName{Name: h}}})
		return code
	}
	for _, h := range both {
		code, _, resp := b.cmd(&eppxml.Command{Info: &eppxml.InfoCmd{Host: &eppxml.DomainName{Name: h}}})
		if code != 1000 || resp.ResData.HostInf.ClID != "reg-b" {
			t.Fatalf("%s after the transfer: %d %+v, want sponsored by reg-b", h, code, resp.ResData)
		}
		if code := hostDel(a, h); code != eppxml.CodeAuthorization {
			t.Fatalf("the losing registrar deletes %s: %d, want 2201", h, code)
		}
	}
	if code, inf := info(b, ""); code != 1000 || !slices.Equal(inf.Host, both) {
		t.Fatalf("the gainer's info: %d %+v", code, inf)
	}
	for _, h := range both {
		if code := hostDel(b, h); code != 1000 {
			t.Fatalf("the gainer deletes %s: %d", h, code)
		}
	}
	if code, msg, _ := b.cmd(del()); code != 1000 {
		t.Fatalf("delete of the domain without hosts: %d %s", code, msg)
	}
}
