package hosting

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
	"github.com/hostplane/hostplane/tests/framework/hostenv"
)

// TestFailedUncertIsRetried (outside-in, three coordinator processes,
// pebble, the hosting agent on real nginx): B squats a name A controls as
// its hosting account's primary domain, on the same node as A's account. A
// verifies the name while the node cannot change its host routes (the
// hosts directory made immutable, as a read-only or failing disk would):
// the hosting.uncert that takes the name off B fails, the name stays routed
// to B and the node refuses A's certificate. The uncert is tried again
// after the cleanup back-off (--cleanup-retry-base 5s here: time for the
// test to see the failure and undo it under load); once the
// directory is writable again that attempt removes B's route and A's
// certificate is installed at once: A's site answers the name over HTTP and
// HTTPS. Before, the failed uncert was never retried: the name stayed B's
// on that node and A's certificate was refused there for ever.
func TestFailedUncertIsRetried(t *testing.T) {
	chattr, err := exec.LookPath("chattr")
	if err != nil {
		t.Fatal("chattr is needed to make the node's hosts directory immutable: apt-get install e2fsprogs")
	}
	w, dns, pb, tlsAddr := newACMEWorld(t, "uncert.test", "--cleanup-retry-base", "5s")
	ctx := hostenv.Ctx(t)
	roots := pb.Root(t)
	idA, _, name := newSite(t, w, dns, "a", "uncert.test")
	clA := w.client(1, w.key)
	page := func(user, text string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(w.env.Root, "sites", user, "public", "index.html"), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	page(w.env.Prefix+"a", "site of A\n")

	scopes := []string{api.ScopeHostingRead, api.ScopeHostingWrite}
	accB, keyB, err := w.c.NewAccount(ctx, w.env.Prefix+"-squatter@example.com", scopes...)
	if err != nil {
		t.Fatal(err)
	}
	clB := w.client(2, keyB)
	userB := w.env.Prefix + "b"
	createdB, err := w.c.AnyAlive(nil).Admin().CreateHosting(ctx, api.AdminHostingCreateRequest{AccountID: accB.ID,
		Plan: "hosting-starter", Domain: name, Username: userB})
	if err != nil {
		t.Fatal(err)
	}
	idB := createdB.Hosting.ID
	framework.WaitActionSuccess(t, clB, createdB.Action.ID, 60*time.Second)
	page(userB, "site of B\n")
	if code, body := hostenv.Get(t, w.env.HTTPAddr, name, "/"); code != http.StatusOK || body != "site of B\n" {
		t.Fatalf("the squatted name before: %d %q", code, body)
	}

	// The node's host routes cannot change until the test says so.
	hosts := filepath.Join(w.env.Root, "hosts")
	immutable := func(on bool) {
		t.Helper()
		flag := "-i"
		if on {
			flag = "+i"
		}
		if out, err := exec.Command(chattr, flag, hosts).CombinedOutput(); err != nil {
			t.Fatalf("chattr %s %s (the file system must support it): %v %s", flag, hosts, err, out)
		}
	}
	immutable(true)
	t.Cleanup(func() { _ = exec.Command(chattr, "-i", hosts).Run() })

	d, err := clA.SetCustomDomain(ctx, idA, name, "")
	if err != nil {
		t.Fatal(err)
	}
	publish(t, dns, d.Records)
	if v, err := clA.VerifyCustomDomain(ctx, idA); err != nil || v.Status != api.CustomDomainVerified {
		t.Fatalf("A verifies: %+v %v", v, err)
	}

	// B's uncert fails; its next attempt is opened and waits.
	actionOfB := func() string {
		t.Helper()
		code, body := rawGetWith(t, w, keyB, "/v1/hosting/"+idB)
		var h api.HostingAccount
		if code != http.StatusOK || json.Unmarshal([]byte(body), &h) != nil {
			t.Fatalf("B's hosting account: %d %s", code, body)
		}
		return h.ActionID
	}
	first := actionOfB()
	if first == "" {
		t.Fatal("A's verification opened no action on B's account")
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		a, err := clB.Action(ctx, first)
		if err == nil && a.Status == api.ActionFailed {
			t.Logf("B's %s %s failed: %+v", a.Command, a.ID, a.Error)
			break
		}
		if err == nil && a.Status == api.ActionSuccess {
			t.Fatalf("B's uncert succeeded with the hosts directory immutable: %+v", a)
		}
		if time.Now().After(deadline) {
			t.Fatalf("B's uncert %s after 30 s: %+v %v", first, a, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if u := filepath.Base(mustReadlink(t, filepath.Join(hosts, name))); u != userB {
		t.Fatalf("hosts/%s routes to %s after the failed uncert", name, u)
	}
	retry := actionOfB()
	if retry == "" || retry == first {
		t.Fatalf("no next attempt of B's failed uncert (B's action: %q)", retry)
	}
	// A's certificate is refused by the node meanwhile (the name is B's
	// there), or not installed yet.
	if cd, err := clA.CustomDomain(ctx, idA); err != nil || (cd.Certificate != nil && cd.Certificate.Status == api.CertificateIssued) {
		t.Fatalf("A's certificate while the name is routed to B: %+v %v", cd.Certificate, err)
	}
	immutable(false)

	// The next attempt takes the name off B; A's certificate follows.
	framework.WaitActionSuccess(t, clB, retry, 30*time.Second)
	done := time.Now()
	deadline = done.Add(30 * time.Second)
	for {
		code, body := hostenv.Get(t, w.env.HTTPAddr, name, "/")
		resp, hbody, herr := framework.TryHTTPS(tlsAddr, name, roots)
		if code == http.StatusOK && body == "site of A\n" && herr == nil && resp.StatusCode == http.StatusOK && string(hbody) == "site of A\n" {
			break
		}
		if time.Now().After(deadline) {
			cd, _ := clA.CustomDomain(context.Background(), idA)
			t.Fatalf("30 s after B's uncert succeeded: HTTP %d %q, HTTPS %v %q; A's certificate %+v", code, body, herr, hbody, cd.Certificate)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("A's site served over HTTPS %.1f s after the uncert's retry succeeded", time.Since(done).Seconds())
	waitCert(t, w, idA, func(c *api.CertificateStatus) bool { return c != nil && c.Status == api.CertificateIssued }, 10*time.Second)
}
