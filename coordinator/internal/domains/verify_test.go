package domains

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/hostplane/hostplane/internal/dnstest"
)

func expect() Expect {
	return Expect{
		Domain: "shop.example.test",
		Token:  "hpv-0123456789abcdef",
		IPv4:   []netip.Addr{netip.MustParseAddr("192.0.2.10")},
		IPv6:   []netip.Addr{netip.MustParseAddr("2001:db8::10")},
		CNAME:  "acc-1.sites.hostplane.test",
	}
}

func verify(t *testing.T, srv *dnstest.Server, e Expect) Result {
	t.Helper()
	r := &Resolver{Addr: srv.Addr, NSPort: srv.Port}
	res, err := r.Verify(context.Background(), e)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if len(res.Nameservers) != 1 || res.Nameservers[0] != "ns1.example.test" {
		t.Fatalf("nameservers %v", res.Nameservers)
	}
	return res
}

func wantProblems(t *testing.T, res Result, says ...string) {
	t.Helper()
	if len(res.Problems) != len(says) {
		t.Fatalf("problems %q, want %d saying %q", res.Message(), len(says), says)
	}
	for i, s := range says {
		if !strings.Contains(res.Problems[i].Reason, s) {
			t.Errorf("problem %d = %q, want it to say %q", i, res.Problems[i].Reason, s)
		}
	}
}

// wantVerified fails t (saying what was set up) unless e verifies with no
// problem.
func wantVerified(t *testing.T, srv *dnstest.Server, e Expect, what string) {
	t.Helper()
	if res := verify(t, srv, e); !res.OK() {
		t.Fatalf("%s: %s", what, res.Message())
	}
}

// TestVerifySteps walks the customer's way: nothing in DNS, then the TXT
// only, then the address, and the mistakes they make on the way; each time
// the message names the record that is missing or wrong.
func TestVerifySteps(t *testing.T) {
	srv := dnstest.Start(t, "example.test")
	e := expect()

	res := verify(t, srv, e)
	wantProblems(t, res,
		"TXT record _hostplane-verify.shop.example.test is missing: create it with the value hpv-0123456789abcdef",
		"no A/AAAA record for shop.example.test: point it to 192.0.2.10, 2001:db8::10, or a CNAME to acc-1.sites.hostplane.test")

	srv.Add(t, `_hostplane-verify.shop.example.test. 60 IN TXT "hpv-wrong"`)
	wantProblems(t, verify(t, srv, e), `TXT record _hostplane-verify.shop.example.test is "hpv-wrong", not hpv-0123456789abcdef`, "no A/AAAA")

	srv.Add(t, `_hostplane-verify.shop.example.test. 60 IN TXT "hpv-0123456789abcdef"`)
	wantProblems(t, verify(t, srv, e), "no A/AAAA record for shop.example.test")

	srv.Add(t, "shop.example.test. 60 IN A 198.51.100.7")
	wantProblems(t, verify(t, srv, e), "A record shop.example.test points to 198.51.100.7, not 192.0.2.10")

	srv.Remove("shop.example.test", "A")
	srv.Add(t, "shop.example.test. 60 IN A 192.0.2.10")
	wantVerified(t, srv, e, "A to the node")

	// An AAAA elsewhere would take the ACME validation (and IPv6 visitors) away.
	srv.Add(t, "shop.example.test. 60 IN AAAA 2001:db8::99")
	wantProblems(t, verify(t, srv, e), "AAAA record shop.example.test points to 2001:db8::99, not 2001:db8::10")
	srv.Remove("shop.example.test", "AAAA")

	// A node without IPv6: any AAAA is wrong.
	e4 := e
	e4.IPv6 = nil
	srv.Add(t, "shop.example.test. 60 IN AAAA 2001:db8::10")
	wantProblems(t, verify(t, srv, e4), "AAAA record shop.example.test points to 2001:db8::10, not none (the node has no AAAA address: remove it)")
	srv.Remove("shop.example.test", "AAAA")

	// The CNAME way, compared without case or the final dot.
	srv.Remove("shop.example.test", "A")
	srv.Add(t, "shop.example.test. 60 IN CNAME elsewhere.example.net.")
	wantProblems(t, verify(t, srv, e), "CNAME shop.example.test points to elsewhere.example.net, not acc-1.sites.hostplane.test")
	srv.Remove("shop.example.test", "CNAME")
	srv.Add(t, "shop.example.test. 60 IN CNAME ACC-1.sites.hostplane.test.")
	wantVerified(t, srv, e, "CNAME to the target")

	// Node addresses unknown (the account's domain does not resolve): only a
	// CNAME can point there, and the message says so.
	srv.Remove("shop.example.test", "CNAME")
	eNone := e
	eNone.IPv4, eNone.IPv6 = nil, nil
	wantProblems(t, verify(t, srv, eNone), "no CNAME record for shop.example.test: create one to acc-1.sites.hostplane.test")
	srv.Add(t, "shop.example.test. 60 IN CNAME acc-1.sites.hostplane.test.")

	// The TXT removed again: no longer verified (no cache in between).
	srv.Remove("_hostplane-verify.shop.example.test", "TXT")
	wantProblems(t, verify(t, srv, e), "TXT record _hostplane-verify.shop.example.test is missing")
}

// TestVerifyZoneApex: the domain is the zone's apex (its SOA is in the answer).
func TestVerifyZoneApex(t *testing.T) {
	srv := dnstest.Start(t, "example.test")
	e := expect()
	e.Domain = "example.test"
	srv.Add(t, `_hostplane-verify.example.test. 60 IN TXT "hpv-0123456789abcdef"`)
	srv.Add(t, "example.test. 60 IN A 192.0.2.10")
	wantVerified(t, srv, e, "apex")
}

// TestVerifyNoNameserver: a domain the resolver knows nothing about, or a
// resolver that does not answer, is an error, not a verdict on the records.
func TestVerifyNoNameserver(t *testing.T) {
	srv := dnstest.Start(t, "example.test")
	e := expect()
	e.Domain = "shop.other.test"
	r := &Resolver{Addr: srv.Addr, NSPort: srv.Port}
	if _, err := r.Verify(context.Background(), e); !errors.Is(err, ErrNoNameserver) {
		t.Fatalf("unknown zone: %v", err)
	}
	dead := &Resolver{Addr: "127.0.0.1:1", Timeout: 200e6}
	if _, err := dead.Verify(context.Background(), expect()); err == nil {
		t.Fatal("a dead resolver gave a verdict")
	}
}

func TestRequired(t *testing.T) {
	recs := Required(expect())
	got := make([]string, len(recs))
	for i, r := range recs {
		got[i] = r.Type + " " + r.Name + " " + r.Value
	}
	want := []string{
		"TXT _hostplane-verify.shop.example.test hpv-0123456789abcdef",
		"A shop.example.test 192.0.2.10",
		"AAAA shop.example.test 2001:db8::10",
		"CNAME shop.example.test acc-1.sites.hostplane.test",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("Required:\n%s", strings.Join(got, "\n"))
	}
}

// TestOwnershipTXTEveryNameserver: the ownership record's values show that
// a token is gone only when every nameserver answered. With a second
// nameserver that does not answer (ns2, at an address where nothing
// listens), the one that answers holding only another token is no proof
// the first token is gone there: OwnershipTXT is an error naming the silent
// one and Verify report it as silent (Verify's verdict on the records
// stands).
// A nameserver of which one address of several answers is not silent.
func TestOwnershipTXTEveryNameserver(t *testing.T) {
	srv := dnstest.Start(t, "example.test")
	e := expect()
	srv.Add(t, `_hostplane-verify.shop.example.test. 60 IN TXT "`+e.Token+`"`)
	srv.Add(t, "shop.example.test. 60 IN A 192.0.2.10")
	r := &Resolver{Addr: srv.Addr, NSPort: srv.Port, Timeout: 500e6}
	ctx := context.Background()
	if txt, silent, err := r.OwnershipTXT(ctx, e.Domain); err != nil || len(txt) != 1 || txt[0] != e.Token || len(silent) != 0 {
		t.Fatalf("one nameserver, answering: %q, silent %q, %v", txt, silent, err)
	}
	// ns1 gets a second address where nothing listens: one answered.
	srv.Add(t, "ns1.example.test. 60 IN A 127.0.0.3")
	if txt, silent, err := r.OwnershipTXT(ctx, e.Domain); err != nil || len(txt) != 1 || len(silent) != 0 {
		t.Fatalf("ns1 answering at one of its addresses: %q, silent %q, %v", txt, silent, err)
	}
	srv.Add(t, "example.test. 60 IN NS ns2.example.test.")
	srv.Add(t, "ns2.example.test. 60 IN A 127.0.0.2")
	if txt, silent, err := r.OwnershipTXT(ctx, e.Domain); err != nil || len(txt) != 1 || len(silent) != 1 || silent[0] != "ns2.example.test" {
		t.Fatalf("ns2 silent: %q, silent %q, %v; want ns1's value and ns2.example.test silent", txt, silent, err)
	}
	res, err := r.Verify(ctx, e)
	if err != nil || !res.OK() || len(res.TXTSilent) != 1 || res.TXTSilent[0] != "ns2.example.test" || len(res.TXT) != 1 {
		t.Fatalf("Verify with ns2 silent: %+v %v, want verified, TXT from ns1, TXTSilent [ns2.example.test]", res, err)
	}
}
