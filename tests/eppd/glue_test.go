package eppd

import (
	"testing"

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
