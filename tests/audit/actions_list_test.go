package audit

import (
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// actionPage is one GET /v1/actions page on coordinator i.
func (r *rig) actionPage(t *testing.T, i int, key, query string) (api.ActionList, framework.Reply) {
	t.Helper()
	var l api.ActionList
	rep := r.get(t, i, key, "/v1/actions?"+query, &l)
	return l, rep
}

// actionIDsOf lists the ids of a page's actions.
func actionIDsOf(l api.ActionList) []string {
	var out []string
	for _, a := range l.Data {
		out = append(out, a.ID)
	}
	return out
}

// checkActionList: A's list of actions (GET /v1/actions) from outside,
// after A's orders (TestOrdersOutsideIn): the same answer from every
// coordinator, the leader and the followers; A's order actions in it and
// nothing of B's view; paging by cursor through a follower while A reboots
// its server between pages gives every action once, the new ones on a new
// first page; each filter; the scopes; bad parameters a 400 naming them.
func checkActionList(t *testing.T, r *rig, own aOwns, f int) {
	// Every action of A's orders finished (the status filter).
	framework.WaitFor(t, "A's actions finished", 60*time.Second, 200*time.Millisecond, func() bool {
		p, _ := r.actionPage(t, f, r.keyA, "status=pending")
		q, _ := r.actionPage(t, f, r.keyA, "status=running")
		return len(p.Data)+len(q.Data) == 0
	})
	before, rep := r.actionPage(t, 0, r.keyA, "limit=200")
	for i := 1; i < r.c.Len(); i++ {
		if _, other := r.actionPage(t, i, r.keyA, "limit=200"); string(other.Body) != string(rep.Body) {
			t.Fatalf("coordinator %d answers %s; coordinator 0 %s", i, other.Body, rep.Body)
		}
	}
	var hostingActs []string
	var provisioned bool
	for _, a := range before.Data {
		switch {
		case a.ID == own.action:
			provisioned = a.Command == api.ActionServerProvision && a.ResourceType == "server" && a.ResourceID == own.server && a.Status == api.ActionSuccess
		case a.ResourceType == "hosting" && a.ResourceID == own.hosting:
			hostingActs = append(hostingActs, a.ID)
		}
	}
	if !provisioned || len(hostingActs) == 0 || before.NextCursor != nil {
		t.Fatalf("A's list after its orders: %s", rep.Body)
	}
	// B sees none of it; asking for A's server, hosting account or action
	// is the 404 of an id that names nothing.
	l, rep0 := r.actionPage(t, f, r.keyB, "")
	if len(l.Data) != 0 || l.NextCursor != nil {
		t.Errorf("B's list: %s", rep0.Body)
	}
	own.notIn(t, "B's GET /v1/actions", string(rep0.Body), r.accA.ID)
	for _, q := range []struct{ name, id string }{{"resource_id", own.server}, {"resource_id", own.hosting}, {"cursor", own.action}} {
		rep := r.call(f, r.keyB, "GET", "/v1/actions?"+q.name+"="+q.id, nil, nil)
		none := r.call(f, r.keyB, "GET", "/v1/actions?"+q.name+"="+unknown(q.id), nil, nil)
		if rep.Status != 404 || !sameError(string(rep.Body), string(none.Body), q.id) {
			t.Errorf("B's list ?%s=A's %s: %s, want the 404 of an unknown id: %s", q.name, q.id, rep, none)
		}
		own.notIn(t, "B's GET /v1/actions?"+q.name, strings.ReplaceAll(string(rep.Body), q.id, "<the id asked>"), r.accA.ID)
	}

	// Pages of one through a follower, A rebooting its server after each:
	// the pages hold the actions there were when paging began, each once,
	// newest first.
	cl := r.apis[f].Client(r.keyA)
	var seen, rebooted []string
	cursor := ""
	for n := 0; ; n++ {
		l, _ := r.actionPage(t, f, r.keyA, "limit=1&cursor="+cursor)
		seen = append(seen, actionIDsOf(l)...)
		rep := r.write(f, r.keyA, "POST", "/v1/servers/"+own.server+"/power/reboot", nil)
		var acc api.ActionAccepted
		if rep.Status != 202 {
			t.Fatalf("reboot: %s", rep)
		}
		rep.Decode(t, &acc)
		framework.WaitActionSuccess(t, cl, acc.Action.ID, 30*time.Second)
		rebooted = append(rebooted, acc.Action.ID)
		if l.NextCursor == nil {
			break
		}
		if n > len(before.Data) {
			t.Fatalf("paged past the %d actions there were", len(before.Data))
		}
		cursor = *l.NextCursor
	}
	if !slices.Equal(seen, actionIDsOf(before)) {
		t.Fatalf("paged while rebooting: %v, want %v", seen, actionIDsOf(before))
	}
	slices.Reverse(rebooted)
	if l, rep := r.actionPage(t, f, r.keyA, "limit="+strconv.Itoa(len(rebooted))); !slices.Equal(actionIDsOf(l), rebooted) || l.NextCursor == nil {
		t.Fatalf("the new first page: %s, want the reboots %v", rep.Body, rebooted)
	}

	// Filters.
	for q, want := range map[string][]string{
		"command=server.reboot":                           rebooted,
		"command=server.reboot&resource_id=" + own.server: rebooted,
		"command=server.reboot&resource_type=hosting":     nil,
		"resource_type=hosting":                           hostingActs,
		"resource_id=" + own.hosting:                      hostingActs,
		"status=error":                                    nil,
		"resource_type=server&command=server.provision":   {own.action},
	} {
		if l, rep := r.actionPage(t, 0, r.keyA, q); !slices.Equal(actionIDsOf(l), want) {
			t.Errorf("?%s: %s, want %v", q, rep.Body, want)
		}
	}

	// Scopes: a key reads the actions of what its scopes read.
	key := func(scopes ...string) string { return r.keyOfA(t, api.KeyCreateRequest{Scopes: scopes}) }
	srvKey, hstKey := key(api.ScopeServersRead), key(api.ScopeHostingRead)
	if l, rep := r.actionPage(t, f, srvKey, "limit=200"); len(l.Data) != len(before.Data)+len(rebooted)-len(hostingActs) || strings.Contains(string(rep.Body), `"hosting"`) {
		t.Errorf("a servers:read key's list: %s", rep.Body)
	}
	if l, rep := r.actionPage(t, f, hstKey, "limit=200"); !slices.Equal(actionIDsOf(l), hostingActs) {
		t.Errorf("a hosting:read key's list: %s, want %v", rep.Body, hostingActs)
	}
	for _, tc := range []struct{ key, query, scope string }{
		{srvKey, "resource_type=hosting", api.ScopeHostingRead},
		{hstKey, "resource_type=server", api.ScopeServersRead},
		{key(api.ScopeBillingRead), "", api.ScopeServersRead},
	} {
		if rep := r.call(f, tc.key, "GET", "/v1/actions?"+tc.query, nil, nil); rep.Status != 403 || !strings.Contains(rep.DecodeError(t).Message, tc.scope) {
			t.Errorf("?%s with a key lacking %s: %s", tc.query, tc.scope, rep)
		}
	}

	// Bad parameters: a 400 naming each, on the leader and a follower.
	for _, q := range []string{"limit=0", "limit=201", "cursor=x", "cursor=" + own.server, "resource_type=vm", "resource_id=" + url.QueryEscape("x' OR 1=1"),
		"status=failed", "command=server.explode", "page=2"} {
		name, _, _ := strings.Cut(q, "=")
		for _, i := range []int{0, f} {
			if rep := r.call(i, r.keyA, "GET", "/v1/actions?"+q, nil, nil); rep.Status != 400 || !strings.Contains(rep.DecodeError(t).Message, `"`+name+`"`) {
				t.Errorf("?%s on coordinator %d: %s, want a 400 naming %s", q, i, rep, name)
			}
		}
	}
}
