package hosting

import (
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
	"github.com/hostplane/hostplane/tests/framework/hostenv"
	"golang.org/x/net/idna"
)

// TestProbe13DeletedAccountFreesItsNames (outside-in, three coordinator
// processes, pebble, the test's own authoritative DNS, the hosting agent
// on real nginx): customer A's hosting account has a verified custom domain
// with its certificate served. A deletes the hosting account itself (not
// the custom domain first). The node keeps nothing of the name: HTTP with
// that Host is no site, HTTPS with that SNI gets no certificate of it, and
// no file of the node's nginx configuration, host routes or certificates
// names it. Another customer, B, then attaches and verifies the name (A's
// old ownership record still in the DNS) and gets its own certificate and
// site there, and may place a hosting account on A's former primary domain.
func TestProbe13DeletedAccountFreesItsNames(t *testing.T) {
	s := newSiteWorld(t, "p13del.test")
	w, dns, roots, tlsAddr, ctx := s.world, s.dns, s.roots, s.tlsAddr, hostenv.Ctx(t)
	idA, ownA, name, clA := s.idA, s.ownA, s.name, s.clA
	attachVerified(t, clA, dns, "A", idA, name)
	writePage(t, w, w.env.Prefix+"a", "site of A\n")
	waitServes(t, w, tlsAddr, roots, name, "site of A\n", 40*time.Second, nil)

	ownB := "ownb-" + w.env.Prefix + ".p13del.test"
	b := newCustomer(t, w, "b", w.env.Prefix+"b", ownB, api.ScopeHostingRead, api.ScopeHostingWrite, api.ScopeHostingDestroy)
	dns.Add(t, ownB+". 60 IN A 127.0.0.1")
	writePage(t, w, w.env.Prefix+"b", "site of B\n")

	del, err := clA.DeleteHosting(ctx, idA, "")
	if err != nil {
		t.Fatal(err)
	}
	framework.WaitActionSuccess(t, clA, del.Action.ID, 60*time.Second)
	if code, body := hostenv.Get(t, w.env.HTTPAddr, name, "/"); code != http.StatusNotFound {
		t.Fatalf("%s after its account was deleted: HTTP %d %q", name, code, body)
	}
	if _, _, err := framework.TryHTTPS(tlsAddr, name, roots); err == nil {
		t.Fatalf("%s after its account was deleted: HTTPS with a certificate of that name", name)
	}
	for _, dir := range []string{"nginx", "hosts", "certs"} {
		_ = filepath.WalkDir(filepath.Join(w.env.Root, dir), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			if d.IsDir() && (d.Name() == "logs" || d.Name() == "tmp") {
				return filepath.SkipDir // requests' logs and buffers, not configuration
			}
			if strings.Contains(d.Name(), name) {
				t.Errorf("%s is left on the node after its account was deleted", p)
			} else if d.Type().IsRegular() {
				if b, _ := os.ReadFile(p); strings.Contains(string(b), name) {
					t.Errorf("%s names %s after its account was deleted", p, name)
				}
			}
			return nil
		})
	}

	// B takes the name: its certificate and its site.
	attachVerified(t, b.cl, dns, "B", b.id, name)
	waitServes(t, w, tlsAddr, roots, name, "site of B\n", 40*time.Second, nil)
	// And A's former primary domain is free to place.
	created, err := w.c.AnyAlive(nil).Admin().CreateHosting(ctx, api.AdminHostingCreateRequest{AccountID: b.accountID,
		Plan: "hosting-starter", Domain: ownA, Username: w.env.Prefix + "c"})
	if err != nil {
		t.Fatalf("B's hosting account on A's former domain %s: %v", ownA, err)
	}
	framework.WaitActionSuccess(t, b.cl, created.Action.ID, 60*time.Second)
	writePage(t, w, w.env.Prefix+"c", "site of C\n")
	if code, body := hostenv.Get(t, w.env.HTTPAddr, ownA, "/"); code != http.StatusOK || body != "site of C\n" {
		t.Fatalf("%s on its new account: %d %q", ownA, code, body)
	}
}

// TestProbe13UnicodeCustomDomain (outside-in, three coordinator processes,
// pebble, the test's own authoritative DNS, the hosting agent on real
// nginx): a customer attaches a custom domain typed in Unicode
// (bücher-….test). The API answers its ASCII (xn--) form and records a DNS
// server can hold; verified, its certificate is issued by pebble for the
// xn-- name and nginx serves the account's site for that SNI and Host.
// Another customer can take it in neither spelling (the xn-- form a 409
// naming domain, the upper-case Unicode one refused naming domain). Its
// owner removes it: nothing of it stays on the node.
func TestProbe13UnicodeCustomDomain(t *testing.T) {
	s := newSiteWorld(t, "p13idn.test")
	w, dns, roots, tlsAddr, ctx := s.world, s.dns, s.roots, s.tlsAddr, hostenv.Ctx(t)
	idA, clA := s.idA, s.clA
	label := "bücher-" + w.env.Prefix
	uni := label + ".p13idn.test"
	d := attachVerified(t, clA, dns, "A", idA, uni)
	if ascii, err := idna.Registration.ToASCII(uni); err != nil || d.Domain != ascii || !strings.HasPrefix(ascii, "xn--") {
		t.Fatalf("custom domain %q answered as %q, want its xn-- form", uni, d.Domain)
	}
	for _, r := range d.Records {
		if strings.ContainsFunc(r.Name+r.Value, func(c rune) bool { return c > 0x7f }) {
			t.Errorf("record not in ASCII: %+v", r)
		}
	}
	name := d.Domain
	writePage(t, w, w.env.Prefix+"a", "site of A\n")
	waitCert(t, clA, idA, certIssued, 40*time.Second)
	waitServes(t, w, tlsAddr, roots, name, "site of A\n", 40*time.Second, nil)

	b := newCustomer(t, w, "b", w.env.Prefix+"b", "ownb-"+w.env.Prefix+".p13idn.test", api.ScopeHostingRead, api.ScopeHostingWrite)
	for _, spelling := range []string{name, uni, strings.ToUpper(label) + ".p13idn.test"} {
		if _, err := b.cl.SetCustomDomain(ctx, b.id, spelling, ""); err == nil || !strings.Contains(err.Error(), "domain") ||
			(api.StatusOf(err) != http.StatusConflict && api.StatusOf(err) != http.StatusBadRequest) {
			t.Errorf("B attaches %q held by A as %q: %v", spelling, name, err)
		}
	}
	if cd, err := clA.CustomDomain(ctx, idA); err != nil || cd.Domain != name || cd.Status != api.CustomDomainVerified {
		t.Fatalf("A's custom domain after B's tries: %+v %v", cd, err)
	}

	if err := clA.DeleteCustomDomain(ctx, idA, ""); err != nil {
		t.Fatal(err)
	}
	framework.WaitFor(t, name+" off the node", 20*time.Second, 200*time.Millisecond, func() bool {
		code, _ := hostenv.Get(t, w.env.HTTPAddr, name, "/")
		_, _, herr := framework.TryHTTPS(tlsAddr, name, roots)
		_, cerr := os.Lstat(filepath.Join(w.env.Root, "certs", name+".pem"))
		_, herr2 := os.Lstat(filepath.Join(w.env.Root, "hosts", name))
		return code == http.StatusNotFound && herr != nil && cerr != nil && herr2 != nil
	})
}
