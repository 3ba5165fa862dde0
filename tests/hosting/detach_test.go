package hosting

import (
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

// TestRemovedCustomDomainLeavesTheNode (outside-in): a custom domain with
// its certificate installed is held by its hosting account (another API
// account can neither attach it nor order a hosting account on it); once
// its owner removes it (DELETE …/custom-domain), the node stops serving it
// (HTTP with that Host is no site, HTTPS with that SNI gets no certificate
// of that name, the certificate file is gone), and another API account
// that then attaches and verifies it gets its own certificate and its own
// site there.
func TestRemovedCustomDomainLeavesTheNode(t *testing.T) {
	s := newSiteWorld(t, "detach.test")
	w, dns, roots, tlsAddr, ctx := s.world, s.dns, s.roots, s.tlsAddr, hostenv.Ctx(t)
	idA, ownA, custom, clA := s.idA, s.ownA, s.name, s.clA
	attachVerified(t, clA, dns, "A", idA, custom)
	waitCert(t, w.client(2, w.key), idA, certIssued, 40*time.Second)
	codeA, bodyA := hostenv.Get(t, w.env.HTTPAddr, ownA, "/")
	if resp, body := framework.GetHTTPS(t, tlsAddr, custom, roots); resp.StatusCode != codeA || string(body) != bodyA {
		t.Fatalf("HTTPS %s is not account A's site: %d %q", custom, resp.StatusCode, body)
	}

	// Another API account with a hosting account of its own on the node.
	ownB := "ownb-" + w.env.Prefix + ".detach.test"
	b := newCustomer(t, w, "b", w.env.Prefix+"b", ownB, api.ScopeHostingRead, api.ScopeHostingWrite, api.ScopeHostingDestroy)
	idB, clB := b.id, b.cl
	dns.Add(t, ownB+". 60 IN A 127.0.0.1")

	// While A holds it, B can take it neither way.
	if _, err := clB.SetCustomDomain(ctx, idB, custom, ""); api.StatusOf(err) != http.StatusConflict || !strings.Contains(err.Error(), "domain") {
		t.Fatalf("B attaches A's custom domain: %v", err)
	}
	if _, err := w.c.AnyAlive(nil).Admin().CreateHosting(ctx, api.AdminHostingCreateRequest{AccountID: b.accountID,
		Plan: "hosting-starter", Domain: custom, Username: w.env.Prefix + "c"}); api.StatusOf(err) != http.StatusConflict {
		t.Fatalf("a hosting account of B on A's custom domain: %v", err)
	}

	// A removes it: the node stops serving it.
	if err := clA.DeleteCustomDomain(ctx, idA, ""); err != nil {
		t.Fatal(err)
	}
	certFile := filepath.Join(w.env.Root, "certs", custom+".pem")
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, body := hostenv.Get(t, w.env.HTTPAddr, custom, "/")
		_, _, herr := framework.TryHTTPS(tlsAddr, custom, roots)
		_, ferr := os.Lstat(certFile)
		if code == http.StatusNotFound && herr != nil && ferr != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("20 s after A removed %s the node still serves it: HTTP %d %q, HTTPS with a certificate of that name: %v, %s there: %v",
				custom, code, body, herr == nil, certFile, ferr == nil)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// B attaches and verifies it: B's certificate and B's site.
	attachVerified(t, clB, dns, "B", idB, custom)
	waitCert(t, clB, idB, certIssued, 40*time.Second)
	codeB, bodyB := hostenv.Get(t, w.env.HTTPAddr, ownB, "/")
	if resp, body := framework.GetHTTPS(t, tlsAddr, custom, roots); resp.StatusCode != codeB || string(body) != bodyB {
		t.Fatalf("HTTPS %s is not account B's site: %d %q (B's own domain: %d %q)", custom, resp.StatusCode, body, codeB, bodyB)
	}

	// B suspended: its custom domain answers the suspension page over HTTPS
	// too; unsuspended, B's site again.
	acc, err := clB.SuspendHosting(ctx, idB, "")
	if err != nil {
		t.Fatal(err)
	}
	framework.WaitActionSuccess(t, clB, acc.Action.ID, 60*time.Second)
	if resp, body := framework.GetHTTPS(t, tlsAddr, custom, roots); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("HTTPS %s of a suspended account: %d %q", custom, resp.StatusCode, body)
	}
	if acc, err = clB.UnsuspendHosting(ctx, idB, ""); err != nil {
		t.Fatal(err)
	}
	framework.WaitActionSuccess(t, clB, acc.Action.ID, 60*time.Second)
	if resp, body := framework.GetHTTPS(t, tlsAddr, custom, roots); resp.StatusCode != codeB || string(body) != bodyB {
		t.Fatalf("HTTPS %s after unsuspend: %d %q", custom, resp.StatusCode, body)
	}

	// B's hosting account deleted: the name is served no more, over HTTP
	// or HTTPS, and its certificate is gone from the node.
	if acc, err = clB.DeleteHosting(ctx, idB, ""); err != nil {
		t.Fatal(err)
	}
	framework.WaitActionSuccess(t, clB, acc.Action.ID, 60*time.Second)
	code, body := hostenv.Get(t, w.env.HTTPAddr, custom, "/")
	_, _, herr := framework.TryHTTPS(tlsAddr, custom, roots)
	if _, ferr := os.Lstat(certFile); code != http.StatusNotFound || herr == nil || ferr == nil {
		t.Fatalf("after B's account was deleted %s answers HTTP %d %q, HTTPS with its certificate: %v, %s there: %v",
			custom, code, body, herr == nil, certFile, ferr == nil)
	}
}
