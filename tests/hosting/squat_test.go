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

// TestVerifiedOwnerTakesASquattedDomain (outside-in, three coordinator
// processes, pebble, the hosting agent on real nginx, the test's own
// authoritative DNS): API account B places a hosting account whose primary
// domain is a name A controls (a primary domain is never verified) and the
// node serves B's site for it. A attaches the name as a custom domain and
// verifies it through DNS: the name moves to A — A's site answers for it
// over HTTP and HTTPS (A's certificate), B's no longer does, B's account
// shows domain_released_at and B gets hosting.domain.released; B can then
// neither attach the name nor place an account on it. A custom domain B
// left pending does not block A either (A's verification drops it). B's
// deletion leaves A's name and certificate on the node.
func TestVerifiedOwnerTakesASquattedDomain(t *testing.T) {
	s := newSiteWorld(t, "squat.test")
	w, dns, roots, tlsAddr, ctx := s.world, s.dns, s.roots, s.tlsAddr, hostenv.Ctx(t)
	idA, name, clA := s.idA, s.name, s.clA
	writePage(t, w, w.env.Prefix+"a", "site of A\n")

	// B, another API account, places a hosting account on A's name.
	userB := w.env.Prefix + "b"
	b := newCustomer(t, w, "squatter", userB, name, api.ScopeHostingRead, api.ScopeHostingWrite, api.ScopeHostingDestroy, api.ScopeWebhooksWrite)
	idB, clB := b.id, b.cl
	if _, err := clB.CreateWebhook(ctx, api.WebhookCreateRequest{URL: w.hooks.srv.URL + "/hook", Events: []string{"*"}}, ""); err != nil {
		t.Fatal(err)
	}
	writePage(t, w, userB, "site of B\n")
	if code, body := hostenv.Get(t, w.env.HTTPAddr, name, "/"); code != http.StatusOK || body != "site of B\n" {
		t.Fatalf("the squatted name before: %d %q", code, body)
	}

	// A attaches and verifies it.
	// (A attaches the name B holds as an unverified primary domain.)
	attachVerified(t, clA, dns, "A", idA, name)
	waitServes(t, w, tlsAddr, roots, name, "site of A\n", 40*time.Second, nil)
	if u := filepath.Base(mustReadlink(t, filepath.Join(w.env.Root, "hosts", name))); u != w.env.Prefix+"a" {
		t.Fatalf("hosts/%s routes to %s", name, u)
	}

	// B's account: still there, its domain released; B was told.
	if code, _, body := w.rawGetAs(0, b.key, "/v1/hosting/"+idB); code != http.StatusOK || !strings.Contains(body, `"domain_released_at":"`) || !strings.Contains(body, `"status":"active"`) {
		t.Fatalf("B's hosting account: %d %s", code, body)
	}
	if ev := w.waitHook(t, "hosting.domain.released", "hostingId", idB); ev["domain"] != name || ev["kind"] != "primary" {
		t.Fatalf("hosting.domain.released: %v", ev)
	}

	// B cannot take a name A verified.
	if _, err := clB.SetCustomDomain(ctx, idB, name, ""); api.StatusOf(err) != http.StatusConflict || !strings.Contains(err.Error(), "domain") {
		t.Fatalf("B attaches A's verified domain: %v", err)
	}
	if _, err := w.c.AnyAlive(nil).Admin().CreateHosting(ctx, api.AdminHostingCreateRequest{AccountID: b.accountID,
		Plan: "hosting-starter", Domain: name, Username: w.env.Prefix + "c"}); api.StatusOf(err) != http.StatusConflict {
		t.Fatalf("a hosting account of B on A's verified domain: %v", err)
	}

	// A custom domain B leaves pending does not block A's second site.
	blog := "blog-" + w.env.Prefix + ".squat.test"
	if _, err := clB.SetCustomDomain(ctx, idB, blog, ""); err != nil {
		t.Fatal(err)
	}
	idA2 := addSite(t, w, dns, w.env.Prefix+"a2", "own2-"+w.env.Prefix+".squat.test")
	// (A attaches the name B holds as a pending custom domain.)
	attachVerified(t, clA, dns, "A", idA2, blog)
	if _, err := clB.CustomDomain(ctx, idB); api.StatusOf(err) != http.StatusNotFound {
		t.Fatalf("B's pending custom domain after A verified it: %v", err)
	}

	// B's account deleted: A's name and certificate stay served.
	acc, err := clB.DeleteHosting(ctx, idB, "")
	if err != nil {
		t.Fatal(err)
	}
	framework.WaitActionSuccess(t, clB, acc.Action.ID, 60*time.Second)
	if resp, body := framework.GetHTTPS(t, tlsAddr, name, roots); resp.StatusCode != http.StatusOK || string(body) != "site of A\n" {
		t.Fatalf("HTTPS %s after B's deletion: %d %q", name, resp.StatusCode, body)
	}
}

func mustReadlink(t *testing.T, p string) string {
	t.Helper()
	s, err := os.Readlink(p)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
