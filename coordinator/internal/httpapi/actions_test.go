package httpapi

import (
	"encoding/json"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/ids"
	"github.com/hostplane/hostplane/pkg/api"
)

// keyFor adds a key with scopes to account acc.
func (s *srvAPI) keyFor(acc string, scopes ...string) string {
	s.t.Helper()
	_, plain := s.addKey(acc, fsm.KeyCreate{Scopes: scopes})
	return plain
}

// actionIDs lists the ids of a GET /v1/actions page and its next_cursor.
func actionIDs(t *testing.T, r reply) ([]string, string) {
	t.Helper()
	var page api.ActionList
	if r.status != 200 || json.Unmarshal(r.body, &page) != nil {
		t.Fatalf("list: %d %s", r.status, r.body)
	}
	var out []string
	for _, a := range page.Data {
		out = append(out, a.ID)
	}
	next := ""
	if page.NextCursor != nil {
		next = *page.NextCursor
	}
	return out, next
}

// TestListActions: GET /v1/actions lists the account's actions newest
// first, each as GET /v1/actions/{id} shows it; pages by cursor without a
// gap or a repeat while actions are made; each filter selects; a key reads
// the actions of the resources its scopes read; a bad parameter is a 400
// naming it.
func TestListActions(t *testing.T) {
	s := newSrvAPI(t)
	s.apply(fsm.CmdClusterLevel, fsm.ClusterLevel{Level: 2})
	acc, key := s.account(api.ScopeServersRead, api.ScopeServersWrite, api.ScopeHostingRead)
	srv1 := s.server(acc)
	time.Sleep(2 * time.Millisecond)
	srv2 := s.server(acc)
	time.Sleep(2 * time.Millisecond)
	hst := s.hostingAccount(acc, "ada", "ada.hosting.test")
	power := func(srv, what string, ok bool) string {
		t.Helper()
		time.Sleep(2 * time.Millisecond) // distinct id timestamps
		id := actionID(t, s.call(key, "POST", "/v1/servers/"+srv+"/power/"+what, ""))
		s.finish(id, ok)
		return id
	}
	stop1 := power(srv1, "stop", true)
	start1 := power(srv1, "start", false)
	time.Sleep(2 * time.Millisecond)
	php := s.hostingAction(acc, hst, "ada", api.ActionHostingSuspend) // left pending
	stop2 := power(srv2, "stop", true)

	all, next := actionIDs(t, s.call(key, "GET", "/v1/actions", ""))
	if len(all) != 7 || next != "" || all[0] != stop2 || all[1] != php || all[2] != start1 || all[3] != stop1 {
		t.Fatalf("all: %v next %q", all, next)
	}
	for i := 1; i < len(all); i++ {
		if all[i-1] <= all[i] {
			t.Fatalf("not newest first: %v", all)
		}
	}
	// Each as GET /v1/actions/{id} shows it.
	var page api.ActionList
	_ = json.Unmarshal(s.call(key, "GET", "/v1/actions", "").body, &page)
	for _, a := range page.Data {
		var one api.Action
		if r := s.call(key, "GET", "/v1/actions/"+a.ID, ""); r.status != 200 || json.Unmarshal(r.body, &one) != nil || !reflect.DeepEqual(one, a) {
			t.Fatalf("listed %+v, GET shows %d %s", a, r.status, r.body)
		}
	}

	// Filters.
	for q, want := range map[string][]string{
		"resource_type=hosting":                   {php, all[4]},
		"resource_id=" + srv1:                     {start1, stop1, all[6]},
		"status=error":                            {start1},
		"status=running&resource_type=hosting":    {},
		"status=pending":                          {php},
		"command=server.stop":                     {stop2, stop1},
		"command=server.stop&resource_id=" + srv2: {stop2},
		// An empty value is no filter, as absent (queryparams.go).
		"resource_type=&status=&command=&resource_id=&cursor=&limit=": all,
		"status=&resource_type=hosting":                               {php, all[4]},
	} {
		got, _ := actionIDs(t, s.call(key, "GET", "/v1/actions?"+q, ""))
		if len(got) != len(want) || len(want) > 0 && !reflect.DeepEqual(got, want) {
			t.Errorf("?%s: %v, want %v", q, got, want)
		}
	}

	// Pages of two while actions are made: every action once, in order.
	var seen []string
	cursor := ""
	made := []string{}
	for i := 0; ; i++ {
		got, next := actionIDs(t, s.call(key, "GET", "/v1/actions?limit=2&cursor="+cursor, ""))
		seen = append(seen, got...)
		if i < 3 {
			made = append(made, power(srv2, map[bool]string{true: "start", false: "stop"}[i%2 == 0], true))
		}
		if next == "" {
			break
		}
		if i > 10 {
			t.Fatal("no end")
		}
		cursor = next
	}
	if !reflect.DeepEqual(seen, all) {
		t.Fatalf("paged while %v were made: %v, want %v", made, seen, all)
	}
	if first, _ := actionIDs(t, s.call(key, "GET", "/v1/actions?limit=3", "")); !reflect.DeepEqual(first, []string{made[2], made[1], made[0]}) {
		t.Fatalf("new first page %v, want the actions made %v newest first", first, made)
	}

	// Scopes: servers:read lists the servers' actions only, hosting:read the
	// hosting account's; asking for the other type is a 403 naming the
	// scope; a key with neither is a 403.
	srvOnly := s.keyFor(acc, api.ScopeServersRead)
	got, _ := actionIDs(t, s.call(srvOnly, "GET", "/v1/actions?limit=200", ""))
	if len(got) != len(all)+len(made)-2 || strings.Contains(strings.Join(got, " "), php) {
		t.Fatalf("servers:read key: %v", got)
	}
	if r := s.call(srvOnly, "GET", "/v1/actions?resource_type=hosting", ""); r.status != 403 || !strings.Contains(r.msg(), "hosting:read") {
		t.Fatalf("servers:read key, resource_type=hosting: %d %s", r.status, r.body)
	}
	hstOnly := s.keyFor(acc, api.ScopeHostingRead)
	if got, _ := actionIDs(t, s.call(hstOnly, "GET", "/v1/actions", "")); !reflect.DeepEqual(got, []string{php, all[4]}) {
		t.Fatalf("hosting:read key: %v", got)
	}
	if r := s.call(hstOnly, "GET", "/v1/actions?resource_type=server", ""); r.status != 403 || !strings.Contains(r.msg(), "servers:read") {
		t.Fatalf("hosting:read key, resource_type=server: %d %s", r.status, r.body)
	}
	if r := s.call(s.keyFor(acc, api.ScopeBillingRead), "GET", "/v1/actions", ""); r.status != 403 {
		t.Fatalf("billing:read key: %d %s", r.status, r.body)
	}

	// Bad parameters: a 400 naming each.
	for q, name := range map[string]string{
		"limit=0": "limit", "limit=201": "limit", "limit=x": "limit",
		"cursor=x": "cursor", "cursor=" + srv1: "cursor", "cursor=act_%00": "cursor",
		"resource_type=vm":  "resource_type",
		"resource_id=act_x": "resource_id", "resource_id=" + url.QueryEscape("srv_1 OR 1=1"): "resource_id",
		"status=failed": "status", "command=server.destroy": "command",
		"page=2": "page", "status=error&status=success": "status",
	} {
		r := s.call(key, "GET", "/v1/actions?"+q, "")
		if r.status != 400 || !strings.Contains(r.msg(), `"`+name+`"`) {
			t.Errorf("?%s: %d %s, want a 400 naming %q", q, r.status, r.body, name)
		}
	}
}

// FuzzActionListQuery: any query string either parses into values of the
// documented sets or is a 400 invalid_query; never a panic.
func FuzzActionListQuery(f *testing.F) {
	for _, s := range []string{"", "limit=5", "cursor=act_01jzq0x6m7d2k9c4v8b3n5t1aa", "resource_type=server&status=error", "command=hosting.php", "resource_id=srv_x", "limit=-1", "cursor=%ff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		q, err := parseActionListQuery(v)
		if err != nil {
			if he, ok := err.(*httpError); !ok || he.status != 400 || he.code != "invalid_query" {
				t.Fatalf("%q: %v", raw, err)
			}
			return
		}
		if q.limit < 1 || q.limit > 200 || q.cursor != "" && !ids.Valid(actionIDPrefix, q.cursor) ||
			q.resource != "" && !ids.Valid(serverIDPrefix, q.resource) && !ids.Valid(hostingIDPrefix, q.resource) ||
			q.resourceType != "" && q.resourceType != "server" && q.resourceType != "hosting" ||
			q.status != "" && !strings.Contains(" pending running success error ", " "+q.status+" ") {
			t.Fatalf("%q parsed as %+v", raw, q)
		}
	})
}
