package rdns

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/hostplane/hostplane/tests/framework"
	"github.com/miekg/dns"
)

// askPTR asks the DNS server at addr for the PTR of ip; it returns the
// target ("" with NXDOMAIN or no answer) and the response code.
func askPTR(t *testing.T, addr string, ip netip.Addr) (string, int) {
	t.Helper()
	r := framework.AskDNS(t, addr, PTRName(ip), dns.TypePTR)
	for _, rr := range r.Answer {
		if p, ok := rr.(*dns.PTR); ok {
			return p.Ptr, r.Rcode
		}
	}
	return "", r.Rcode
}

func mustZone(t *testing.T, name string) Zone {
	t.Helper()
	z, err := ParseZone(name)
	if err != nil {
		t.Fatal(err)
	}
	return z
}

// TestSyncRealPowerDNS drives a real PowerDNS through Sync and asks it over
// DNS: an IPv4 zone and an IPv6 nibble zone are created with SOA and NS, each
// PTR is served, a changed PTR is replaced, a dropped one is deleted, a PTR
// added by hand to the zone is removed, and a repeat changes nothing.
func TestSyncRealPowerDNS(t *testing.T) {
	p := framework.StartPowerDNS(t)
	c := &Client{BaseURL: p.APIURL, ServerID: "localhost", Key: p.APIKey}
	ctx := context.Background()
	opt := Options{Nameservers: []string{"ns1.example.test", "ns2.example.test."}, TTL: 600}

	z4 := mustZone(t, "100.51.198.in-addr.arpa")
	z6 := mustZone(t, "1.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa")
	a1, a2 := netip.MustParseAddr("198.51.100.10"), netip.MustParseAddr("198.51.100.11")
	b1 := netip.MustParseAddr("2001:db8:1::10")
	outside := netip.MustParseAddr("203.0.113.5")

	st, err := c.Sync(ctx, Desired{Zone: z4, PTRs: map[netip.Addr]string{a1: "vm10.example.test", a2: "vm11.example.test", outside: "no.example.test"}}, opt)
	if err != nil || !st.Created || st.Replaced != 2 {
		t.Fatalf("first sync of %s: %+v, %v", z4.Name, st, err)
	}
	if st, err := c.Sync(ctx, Desired{Zone: z6, PTRs: map[netip.Addr]string{b1: "v6.example.test"}}, opt); err != nil || !st.Created {
		t.Fatalf("first sync of %s: %+v, %v", z6.Name, st, err)
	}
	for ip, want := range map[netip.Addr]string{a1: "vm10.example.test.", a2: "vm11.example.test.", b1: "v6.example.test."} {
		if got, rc := askPTR(t, p.DNSAddr, ip); got != want {
			t.Errorf("PTR %s = %q (rcode %s), want %q", ip, got, dns.RcodeToString[rc], want)
		}
	}
	// The zones are real zones: SOA and the NS records asked for.
	for _, z := range []Zone{z4, z6} {
		if soa := framework.AskDNS(t, p.DNSAddr, z.FQDN(), dns.TypeSOA).Answer; len(soa) != 1 {
			t.Errorf("SOA of %s: %v", z.Name, soa)
		}
		var ns []string
		for _, rr := range framework.AskDNS(t, p.DNSAddr, z.FQDN(), dns.TypeNS).Answer {
			ns = append(ns, rr.(*dns.NS).Ns)
		}
		if strings.Join(ns, ",") != "ns1.example.test.,ns2.example.test." && strings.Join(ns, ",") != "ns2.example.test.,ns1.example.test." {
			t.Errorf("NS of %s: %v", z.Name, ns)
		}
	}
	if _, rc := askPTR(t, p.DNSAddr, outside); rc != dns.RcodeRefused {
		t.Errorf("an address outside every zone: rcode %s, want REFUSED (not served)", dns.RcodeToString[rc])
	}

	// Somebody adds a PTR by hand; hostplane owns the zone and removes it.
	hand := netip.MustParseAddr("198.51.100.99")
	if err := c.Patch(ctx, z4.FQDN(), []RRSet{replace(PTRName(hand), "hand.example.test.", 60)}); err != nil {
		t.Fatal(err)
	}
	st, err = c.Sync(ctx, Desired{Zone: z4, PTRs: map[netip.Addr]string{a1: "renamed.example.test"}}, opt)
	if err != nil || st.Created || st.Replaced != 1 || st.Delete != 2 {
		t.Fatalf("second sync: %+v, %v (want 1 replaced, 2 deleted)", st, err)
	}
	if got, _ := askPTR(t, p.DNSAddr, a1); got != "renamed.example.test." {
		t.Errorf("renamed PTR = %q", got)
	}
	for _, ip := range []netip.Addr{a2, hand} {
		if got, rc := askPTR(t, p.DNSAddr, ip); got != "" || rc != dns.RcodeNameError {
			t.Errorf("removed PTR %s = %q rcode %s, want NXDOMAIN", ip, got, dns.RcodeToString[rc])
		}
	}
	if st, err := c.Sync(ctx, Desired{Zone: z4, PTRs: map[netip.Addr]string{a1: "renamed.example.test"}}, opt); err != nil || st != (Stats{}) {
		t.Errorf("a repeat changed something: %+v, %v", st, err)
	}

	// An invalid target never reaches PowerDNS (and does not block the rest).
	st, err = c.Sync(ctx, Desired{Zone: z4, PTRs: map[netip.Addr]string{a1: "renamed.example.test", a2: "bad name\n.example"}}, opt)
	if err != nil || st != (Stats{}) {
		t.Errorf("sync with an invalid target: %+v, %v", st, err)
	}

	// PowerDNS down: Sync fails (without the key in the error); up again: it works.
	p.Stop()
	_, err = c.Sync(ctx, Desired{Zone: z6, PTRs: map[netip.Addr]string{b1: "back.example.test"}}, opt)
	if err == nil || strings.Contains(err.Error(), p.APIKey) {
		t.Fatalf("sync with PowerDNS down: %v", err)
	}
	p.Start()
	if _, err := c.Sync(ctx, Desired{Zone: z6, PTRs: map[netip.Addr]string{b1: "back.example.test"}}, opt); err != nil {
		t.Fatal(err)
	}
	if got, _ := askPTR(t, p.DNSAddr, b1); got != "back.example.test." {
		t.Errorf("IPv6 PTR after restart = %q", got)
	}

	// A wrong key is an API error that names the status, not the key.
	bad := &Client{BaseURL: p.APIURL, ServerID: "localhost", Key: "wrong-key-value"}
	_, err = bad.Zone(ctx, z4.FQDN())
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 401 || strings.Contains(err.Error(), "wrong-key-value") {
		t.Errorf("wrong key: %v", err)
	}

	if err := c.DeleteZone(ctx, z4.FQDN()); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteZone(ctx, z4.FQDN()); err != nil {
		t.Errorf("deleting an absent zone: %v", err)
	}
	if _, err := c.Zone(ctx, z4.FQDN()); !errors.Is(err, ErrNoZone) {
		t.Errorf("deleted zone: %v", err)
	}
}
