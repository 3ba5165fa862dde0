package hosting

import (
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework/hostenv"
)

// TestLapsedDomainChangesHands (outside-in, three coordinator processes,
// pebble, the hosting agent on real nginx, the test's own authoritative
// DNS): A's verified custom domain, its certificate installed, holds the
// name against B (another customer) while A's ownership record
// (_hostplane-verify TXT with A's token) is in the name's DNS: B's attach is
// a 409 naming domain. Once that record is gone (the domain expired or was
// sold: its new DNS has none of A's records), B can attach the name
// (pending: A's site still answers for it) and, its own records published,
// verify it: the name moves to B in one command — B's site answers for it
// over HTTP and HTTPS with B's certificate, A's custom domain is gone (404)
// and A gets hosting.domain.released (kind custom_domain), A's account and
// own domain untouched. Before, a verified custom domain held its name for
// ever: B's attach was a 409 whatever the DNS said.
func TestLapsedDomainChangesHands(t *testing.T) {
	s := newSiteWorld(t, "lapsed.test")
	w, dns, roots, tlsAddr, ctx := s.world, s.dns, s.roots, s.tlsAddr, hostenv.Ctx(t)
	idA, ownA, name, clA := s.idA, s.ownA, s.name, s.clA
	writePage(t, w, w.env.Prefix+"a", "site of A\n")
	serves := func(who string, timeout time.Duration) {
		t.Helper()
		waitServes(t, w, tlsAddr, roots, name, who, timeout, nil)
	}

	dA := attachVerified(t, clA, dns, "A", idA, name)
	serves("site of A\n", 40*time.Second)

	userB, ownB := w.env.Prefix+"b", "ownb-"+w.env.Prefix+".lapsed.test"
	b := newCustomer(t, w, "b", userB, ownB, api.ScopeHostingRead, api.ScopeHostingWrite)
	idB, clB := b.id, b.cl
	dns.Add(t, ownB+". 60 IN A 127.0.0.1")
	writePage(t, w, userB, "site of B\n")

	// A's ownership record in place: the name is A's.
	if _, err := clB.SetCustomDomain(ctx, idB, name, ""); api.StatusOf(err) != http.StatusConflict || !strings.Contains(err.Error(), "_hostplane-verify."+name) {
		t.Fatalf("B attaches A's verified name: %v", err)
	}

	// The domain changes hands: its DNS no longer has A's record.
	dns.Remove("_hostplane-verify."+name, "TXT")
	dB, err := clB.SetCustomDomain(ctx, idB, name, "")
	if err != nil || dB.Status != api.CustomDomainPendingDNS {
		t.Fatalf("B attaches the name whose ownership record is gone: %+v %v", dB, err)
	}
	if d, err := clA.CustomDomain(ctx, idA); err != nil || d.Status != api.CustomDomainVerified {
		t.Fatalf("A's custom domain after B's attach: %+v %v", d, err)
	}
	serves("site of A\n", 5*time.Second)
	// While A's record is back (both tokens published), B's proof does
	// not take the name.
	publish(t, dns, dA.Records[:1])
	publish(t, dns, dB.Records)
	if _, err := clB.VerifyCustomDomain(ctx, idB); api.StatusOf(err) != http.StatusConflict || !strings.Contains(err.Error(), `"domain"`) {
		t.Fatalf("B verifies while A's ownership record is back: %v", err)
	}
	if d, err := clA.CustomDomain(ctx, idA); err != nil || d.Status != api.CustomDomainVerified {
		t.Fatalf("A's custom domain after B's refused verify: %+v %v", d, err)
	}
	dns.Remove("_hostplane-verify."+name, "TXT")
	publish(t, dns, dB.Records[:1])
	if v, err := clB.VerifyCustomDomain(ctx, idB); err != nil || v.Status != api.CustomDomainVerified {
		t.Fatalf("B verifies: %+v %v", v, err)
	}

	serves("site of B\n", 40*time.Second)
	if u := filepath.Base(mustReadlink(t, filepath.Join(w.env.Root, "hosts", name))); u != userB {
		t.Fatalf("hosts/%s routes to %s", name, u)
	}
	waitCert(t, clB, idB, certIssued, 10*time.Second)

	// A: its custom domain gone, told so; its account and own domain as before.
	if _, err := clA.CustomDomain(ctx, idA); api.StatusOf(err) != http.StatusNotFound {
		t.Fatalf("A's custom domain after B took the name: %v", err)
	}
	if ev := w.waitHook(t, "hosting.domain.released", "hostingId", idA); ev["domain"] != name || ev["kind"] != "custom_domain" {
		t.Fatalf("hosting.domain.released: %v", ev)
	}
	if h, err := clA.HostingAccount(ctx, idA); err != nil || h.Status != api.HostingActive || h.ActionID != "" || h.DomainReleasedAt != nil {
		t.Fatalf("A's hosting account: %+v %v", h, err)
	}
	if code, body := hostenv.Get(t, w.env.HTTPAddr, ownA, "/"); code != http.StatusOK || body != "site of A\n" {
		t.Fatalf("A's own domain: %d %q", code, body)
	}
}
