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

// TestRemovedCustomDomainLeavesTheNode (outside-in): a custom domain with
// its certificate installed is held by its hosting account (another API
// account can neither attach it nor order a hosting account on it); once
// its owner removes it (DELETE …/custom-domain), the node stops serving it
// (HTTP with that Host is no site, HTTPS with that SNI gets no certificate
// of that name, the certificate file is gone), and another API account
// that then attaches and verifies it gets its own certificate and its own
// site there.
func TestRemovedCustomDomainLeavesTheNode(t *testing.T) {
	w, dns, pb, tlsAddr := newACMEWorld(t, "detach.test")
	ctx := hostenv.Ctx(t)
	roots := pb.Root(t)
	idA, ownA, custom := newSite(t, w, dns, "a", "detach.test")
	clA := w.client(1, w.key)
	d, err := clA.SetCustomDomain(ctx, idA, custom, "")
	if err != nil {
		t.Fatal(err)
	}
	publish(t, dns, d.Records)
	if _, err := clA.VerifyCustomDomain(ctx, idA); err != nil {
		t.Fatalf("verify: %v", err)
	}
	waitCert(t, w, idA, func(c *api.CertificateStatus) bool { return c != nil && c.Status == api.CertificateIssued }, 40*time.Second)
	codeA, bodyA := hostenv.Get(t, w.env.HTTPAddr, ownA, "/")
	if resp, body := framework.GetHTTPS(t, tlsAddr, custom, roots); resp.StatusCode != codeA || string(body) != bodyA {
		t.Fatalf("HTTPS %s is not account A's site: %d %q", custom, resp.StatusCode, body)
	}

	// Another API account with a hosting account of its own on the node.
	scopes := []string{api.ScopeHostingRead, api.ScopeHostingWrite, api.ScopeHostingDestroy}
	accB, keyB, err := w.c.NewAccount(ctx, w.env.Prefix+"-b@example.com", scopes...)
	if err != nil {
		t.Fatal(err)
	}
	ownB := "ownb-" + w.env.Prefix + ".detach.test"
	createdB, err := w.c.AnyAlive(nil).Admin().CreateHosting(ctx, api.AdminHostingCreateRequest{AccountID: accB.ID,
		Plan: "hosting-starter", Domain: ownB, Username: w.env.Prefix + "b"})
	if err != nil {
		t.Fatal(err)
	}
	idB, clB := createdB.Hosting.ID, w.client(2, keyB)
	framework.WaitActionSuccess(t, clB, createdB.Action.ID, 60*time.Second)
	dns.Add(t, ownB+". 60 IN A 127.0.0.1")

	// While A holds it, B can take it neither way.
	if _, err := clB.SetCustomDomain(ctx, idB, custom, ""); apiStatus(err) != http.StatusConflict || !strings.Contains(err.Error(), "domain") {
		t.Fatalf("B attaches A's custom domain: %v", err)
	}
	if _, err := w.c.AnyAlive(nil).Admin().CreateHosting(ctx, api.AdminHostingCreateRequest{AccountID: accB.ID,
		Plan: "hosting-starter", Domain: custom, Username: w.env.Prefix + "c"}); apiStatus(err) != http.StatusConflict {
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
	d, err = clB.SetCustomDomain(ctx, idB, custom, "")
	if err != nil {
		t.Fatalf("B attaches the released domain: %v", err)
	}
	publish(t, dns, d.Records)
	if _, err := clB.VerifyCustomDomain(ctx, idB); err != nil {
		t.Fatalf("B verifies: %v", err)
	}
	deadline = time.Now().Add(40 * time.Second)
	for {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		cd, err := clB.CustomDomain(cctx, idB)
		cancel()
		if err == nil && cd.Certificate != nil && cd.Certificate.Status == api.CertificateIssued {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("B's certificate of %s after 40 s: %+v %v", custom, cd.Certificate, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
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
