package hosting

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
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
	s := newSiteWorld(t, "uncert.test", "--cleanup-retry-base", "5s")
	w, dns, roots, tlsAddr, ctx := s.world, s.dns, s.roots, s.tlsAddr, hostenv.Ctx(t)
	idA, name, clA := s.idA, s.name, s.clA
	writePage(t, w, w.env.Prefix+"a", "site of A\n")

	userB := w.env.Prefix + "b"
	b := newCustomer(t, w, "squatter", userB, name, api.ScopeHostingRead, api.ScopeHostingWrite)
	idB, clB := b.id, b.cl
	writePage(t, w, userB, "site of B\n")
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

	attachVerified(t, clA, dns, "A", idA, name)

	// B's uncert fails; its next attempt is opened and waits.
	actionOfB := func() string {
		t.Helper()
		code, _, body := w.rawGetAs(0, b.key, "/v1/hosting/"+idB)
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
	waitServes(t, w, tlsAddr, roots, name, "site of A\n", 30*time.Second, func() string {
		cd, _ := clA.CustomDomain(context.Background(), idA)
		return fmt.Sprintf("after B's uncert succeeded; A's certificate %+v", cd.Certificate)
	})
	t.Logf("A's site served over HTTPS %.1f s after the uncert's retry succeeded", time.Since(done).Seconds())
	waitCert(t, w.client(2, w.key), idA, certIssued, 10*time.Second)
}
