package hosting

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
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
	w, dns, pb, tlsAddr := newACMEWorld(t, "lapsed.test")
	ctx := hostenv.Ctx(t)
	roots := pb.Root(t)
	idA, ownA, name := newSite(t, w, dns, "a", "lapsed.test")
	clA := w.client(1, w.key)
	page := func(user, text string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(w.env.Root, "sites", user, "public", "index.html"), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	page(w.env.Prefix+"a", "site of A\n")
	serves := func(who string, timeout time.Duration) {
		t.Helper()
		deadline := time.Now().Add(timeout)
		for {
			code, body := hostenv.Get(t, w.env.HTTPAddr, name, "/")
			resp, hbody, herr := framework.TryHTTPS(tlsAddr, name, roots)
			if code == http.StatusOK && body == who && herr == nil && resp.StatusCode == http.StatusOK && string(hbody) == who {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: want %q, HTTP %d %q, HTTPS %v %q", name, who, code, body, herr, hbody)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}

	dA, err := clA.SetCustomDomain(ctx, idA, name, "")
	if err != nil {
		t.Fatal(err)
	}
	publish(t, dns, dA.Records)
	if v, err := clA.VerifyCustomDomain(ctx, idA); err != nil || v.Status != api.CustomDomainVerified {
		t.Fatalf("A verifies: %+v %v", v, err)
	}
	serves("site of A\n", 40*time.Second)

	accB, keyB, err := w.c.NewAccount(ctx, w.env.Prefix+"-b@example.com", api.ScopeHostingRead, api.ScopeHostingWrite)
	if err != nil {
		t.Fatal(err)
	}
	clB := w.client(2, keyB)
	userB := w.env.Prefix + "b"
	createdB, err := w.c.AnyAlive(nil).Admin().CreateHosting(ctx, api.AdminHostingCreateRequest{AccountID: accB.ID,
		Plan: "hosting-starter", Domain: "ownb-" + w.env.Prefix + ".lapsed.test", Username: userB})
	if err != nil {
		t.Fatal(err)
	}
	idB := createdB.Hosting.ID
	framework.WaitActionSuccess(t, clB, createdB.Action.ID, 60*time.Second)
	dns.Add(t, "ownb-"+w.env.Prefix+".lapsed.test. 60 IN A 127.0.0.1")
	page(userB, "site of B\n")

	// A's ownership record in place: the name is A's.
	if _, err := clB.SetCustomDomain(ctx, idB, name, ""); apiStatus(err) != http.StatusConflict || !strings.Contains(err.Error(), "_hostplane-verify."+name) {
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
	if _, err := clB.VerifyCustomDomain(ctx, idB); apiStatus(err) != http.StatusConflict || !strings.Contains(err.Error(), `"domain"`) {
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
	deadline := time.Now().Add(10 * time.Second)
	for {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		d, err := clB.CustomDomain(cctx, idB)
		cancel()
		if err == nil && d.Certificate != nil && d.Certificate.Status == api.CertificateIssued {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("B's certificate: %+v %v", d.Certificate, err)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// A: its custom domain gone, told so; its account and own domain as before.
	if _, err := clA.CustomDomain(ctx, idA); apiStatus(err) != http.StatusNotFound {
		t.Fatalf("A's custom domain after B took the name: %v", err)
	}
	deadline = time.Now().Add(20 * time.Second)
	for w.hooks.find("hosting.domain.released", "hostingId", idA) == nil {
		if time.Now().After(deadline) {
			t.Fatal("no hosting.domain.released for A's account")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if ev := w.hooks.find("hosting.domain.released", "hostingId", idA); ev["domain"] != name || ev["kind"] != "custom_domain" {
		t.Fatalf("hosting.domain.released: %v", ev)
	}
	if h, err := clA.HostingAccount(ctx, idA); err != nil || h.Status != api.HostingActive || h.ActionID != "" || h.DomainReleasedAt != nil {
		t.Fatalf("A's hosting account: %+v %v", h, err)
	}
	if code, body := hostenv.Get(t, w.env.HTTPAddr, ownA, "/"); code != http.StatusOK || body != "site of A\n" {
		t.Fatalf("A's own domain: %d %q", code, body)
	}
}
