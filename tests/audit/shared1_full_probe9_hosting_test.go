package audit

import (
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// TestProbe9HostingLifecycleAsScripted follows a hosting account through
// the 444host seed's verbs as a customer scripts them (through a follower,
// with every scope; the node is the scripted agent with PHP 8.2): PUT php
// with the installed version twice (each an action that succeeds, the
// account active on 8.2), with versions that are no version or are not
// installed (400 naming php_version, no action opened); POST ssl/retry with
// no custom domain, and with one not verified; unsuspend of an active
// account, suspend twice, unsuspend; DELETE, then every write on the deleted
// account. Each refusal says what is wrong with the account in a 409, never a
// 404: a 404 is "does not exist or is not yours" (seed), which a script takes
// for the account being gone. B's call on A's account is the 404 an unknown
// id gets. Before, ssl/retry without a custom domain (and on a deleted
// account) was a 404 "custom domain not found".
func TestProbe9HostingLifecycleAsScripted(t *testing.T) {
	r := sharedRig(t, "audit")
	r.c.Credit(r.ctx, r.accA.ID, hostingPrice)
	f := r.follower()
	var ho api.HostingOrder
	r.ordered(t, "order", f, r.keyA, "/v1/hosting", hostingBody("pnine"), &ho, 60*time.Second)
	id := ho.Hosting.ID
	path := "/v1/hosting/" + id
	// settled waits until the account has no action under way and is in
	// status want on PHP 8.2.
	settled := func(what, want string) {
		t.Helper()
		var h api.HostingAccount
		framework.WaitFor(t, what+": "+want+" with no action under way", 30*time.Second, 50*time.Millisecond, func() bool {
			h = api.HostingAccount{}
			r.call(0, r.keyA, "GET", path, nil, nil).Decode(t, &h)
			return h.ActionID == "" && h.Status == want
		})
		if h.PHPVersion != "8.2" {
			t.Errorf("%s: php_version %q, want 8.2", what, h.PHPVersion)
		}
	}
	actions := func() int {
		var l api.ActionList
		r.get(t, 0, r.keyA, "/v1/actions?limit=200&resource_id="+id, &l)
		return len(l.Data)
	}
	refused := func(what, method, sub string, body any, status int, code, says string) {
		t.Helper()
		rep := r.call(f, r.keyA, method, path+sub, body, nil)
		if rep.Status != status {
			t.Errorf("%s: %s; want %d %s saying %q", what, rep, status, code, says)
		} else if e := rep.DecodeError(t); e.Code != code || !strings.Contains(e.Message, says) {
			t.Errorf("%s: %s; want %d %s saying %q", what, rep, status, code, says)
		}
	}
	accepted := func(what, method, sub string, body any) {
		t.Helper()
		acc := r.accepted(t, what, r.keyA, r.call(f, r.keyA, method, path+sub, body, nil), 30*time.Second)
		if acc.Action.ResourceID != id {
			t.Errorf("%s: action of %q", what, acc.Action.ResourceID)
		}
	}

	// PHP: the installed version, twice: each applied, nothing else changes.
	for range 2 {
		accepted("PUT php 8.2", "PUT", "/php", map[string]any{"php_version": "8.2"})
		settled("after PUT php 8.2", api.HostingActive)
	}
	n := actions()
	for _, v := range []string{"8", "8.2.0", " 8.2", "8.2 ", "latest", "php8.2", "8,2", "v8.2"} {
		refused("PUT php "+v, "PUT", "/php", map[string]any{"php_version": v}, 400, "invalid_field", `"php_version"`)
	}
	for _, v := range []string{"8.3", "7.4", "8.1", "8.20"} {
		refused("PUT php "+v+" (not installed)", "PUT", "/php", map[string]any{"php_version": v}, 400, "invalid_field", "installed: 8.2")
	}
	if got := actions(); got != n {
		t.Errorf("the refused PHP versions opened %d actions", got-n)
	}

	// SSL retry: no custom domain, then one not verified.
	refused("ssl/retry without a custom domain", "POST", "/ssl/retry", nil, 409, "no_custom_domain", "custom-domain")
	noneRep := r.call(f, r.keyB, "POST", "/v1/hosting/"+unknown(id)+"/ssl/retry", nil, nil)
	theirs := r.call(f, r.keyB, "POST", path+"/ssl/retry", nil, nil)
	if theirs.Status != 404 || !sameError(string(theirs.Body), string(noneRep.Body), id) {
		t.Errorf("B's ssl/retry on A's account: %s; an unknown id: %s", theirs, noneRep)
	}
	if rep := r.call(f, r.keyA, "PUT", path+"/custom-domain", map[string]any{"domain": "www.pnine-shop.example"}, nil); rep.Status != 200 {
		t.Fatalf("custom domain: %s", rep)
	}
	refused("ssl/retry of an unverified custom domain", "POST", "/ssl/retry", nil, 409, "conflict", "not verified")

	// Suspend and unsuspend as the customer sees them.
	refused("unsuspend of an active account", "POST", "/unsuspend", nil, 409, "conflict", "not suspended")
	accepted("suspend", "POST", "/suspend", nil)
	settled("after suspend", api.HostingSuspended)
	refused("suspend of a suspended account", "POST", "/suspend", nil, 409, "conflict", "already suspended")
	accepted("unsuspend", "POST", "/unsuspend", nil)
	settled("after unsuspend", api.HostingActive)

	// DELETE, then every write on the deleted account: a 409 saying so.
	if rep := r.call(f, r.keyA, "DELETE", path+"/custom-domain", nil, nil); rep.Status != 204 {
		t.Fatalf("drop the custom domain: %s", rep)
	}
	accepted("delete", "DELETE", "", nil)
	settled("after delete", api.HostingDeleted)
	n = actions()
	for _, w := range []struct{ method, sub string }{
		{"DELETE", ""}, {"POST", "/suspend"}, {"POST", "/unsuspend"}, {"POST", "/ssl/retry"},
	} {
		refused(w.method+" "+w.sub+" of a deleted account", w.method, w.sub, nil, 409, "conflict", "is deleted")
	}
	refused("PUT php of a deleted account", "PUT", "/php", map[string]any{"php_version": "8.2"}, 409, "conflict", "is deleted")
	refused("PUT custom-domain of a deleted account", "PUT", "/custom-domain", map[string]any{"domain": "www.pnine-shop.example"}, 409, "conflict", "is deleted")
	if got := actions(); got != n {
		t.Errorf("the refused writes on the deleted account opened %d actions", got-n)
	}
}
