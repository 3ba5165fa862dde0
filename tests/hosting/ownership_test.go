package hosting

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework/hostenv"
)

// TestOwnClaimDoesNotMove (outside-in, three coordinator processes, the
// test's own authoritative DNS): a customer's claim to a name never takes
// it from another hosting account of the same customer. A's hosting
// account A2 attaches a name while B (another customer) holds it pending,
// so A2's claim is recorded pending; B drops it and A's other hosting
// account A1 attaches it, holding it. A2's verify, its DNS records in
// place, is a 409 naming domain and A1's: A1 keeps the name, both claims
// stay as they were and A is told of no release. (Before, the verify moved
// the name from A1 to A2 though a PUT of it on A2 was a 409.) Different
// API accounts are different customers: between them the proven claim
// still takes an unverified one (TestVerifiedOwnerTakesASquattedDomain).
func TestOwnClaimDoesNotMove(t *testing.T) {
	s := newSiteWorld(t, "own.test") // A1: user <Prefix>a
	w, dns, ctx := s.world, s.dns, hostenv.Ctx(t)
	id1, name, clA := s.idA, s.name, s.clA
	id2 := addSite(t, w, dns, w.env.Prefix+"a2", "own2-"+w.env.Prefix+".own.test")

	b := newCustomer(t, w, "b", w.env.Prefix+"b", "ownb-"+w.env.Prefix+".own.test", api.ScopeHostingRead, api.ScopeHostingWrite)
	idB, clB := b.id, b.cl

	if _, err := clB.SetCustomDomain(ctx, idB, name, ""); err != nil {
		t.Fatal(err)
	}
	d2, err := clA.SetCustomDomain(ctx, id2, name, "")
	if err != nil || d2.Status != api.CustomDomainPendingDNS {
		t.Fatalf("A2 attaches the name B holds unverified: %+v %v", d2, err)
	}
	if err := clB.DeleteCustomDomain(ctx, idB, ""); err != nil {
		t.Fatal(err)
	}
	d1, err := clA.SetCustomDomain(ctx, id1, name, "")
	if err != nil {
		t.Fatalf("A1 attaches the freed name: %v", err)
	}
	if _, err := clA.SetCustomDomain(ctx, id2, name, ""); err != nil {
		t.Fatalf("A2's PUT of its own pending name again: %v", err)
	}

	publish(t, dns, d2.Records)
	_, err = clA.VerifyCustomDomain(ctx, id2)
	if api.StatusOf(err) != http.StatusConflict || !strings.Contains(err.Error(), `"domain"`) || !strings.Contains(err.Error(), id1) {
		t.Fatalf("A2 verifies the name A1 holds: %v, want a 409 naming domain and %s", err, id1)
	}
	for id, want := range map[string]api.CustomDomain{id1: d1, id2: d2} {
		got, err := clA.CustomDomain(ctx, id)
		if err != nil || got.Domain != name || got.Status != api.CustomDomainPendingDNS || got.Records[0].Value != want.Records[0].Value {
			t.Fatalf("%s's custom domain after the refused verify: %+v %v", id, got, err)
		}
	}
	// Verified on A1 it is A1's: its own claim, nothing moved.
	dns.Remove("_hostplane-verify."+name, "TXT")
	publish(t, dns, d1.Records)
	if v, err := clA.VerifyCustomDomain(ctx, id1); err != nil || v.Status != api.CustomDomainVerified {
		t.Fatalf("A1 verifies: %+v %v", v, err)
	}
	time.Sleep(time.Second)
	if ev := w.hooks.find("hosting.domain.released", "domain", name); ev != nil {
		t.Fatalf("A was told of a release: %v", ev)
	}
}
