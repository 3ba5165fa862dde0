package audit

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/client"
	"github.com/hostplane/hostplane/tests/framework"
)

// TestDomainScopesListsAndOperator: the domains surface as keys of every
// shape, a paging client and an operator see it. A domains:read key reads
// and changes nothing; a domains:write key changes and does not list; a
// default key changes but does not buy (orders:write is not a default
// scope); a key without domain scopes gets 403s in the error envelope; B's
// list and pages show none of A's domains; A's pages cover its domains once
// each, and bad paging is a 400 naming the parameter; `hostplanectl domain
// list|show` shows what the API shows with the owner and the operation in
// flight, and a mistyped id or account is a clear failure.
func TestDomainScopesListsAndOperator(t *testing.T) {
	d := newDomRig(t)
	d.c.Credit(d.ctx, d.accA.ID, 20*domainPrice)
	d.c.Credit(d.ctx, d.accB.ID, domainPrice)
	var mine []api.Domain
	for i := range 5 {
		mine = append(mine, d.active(i%3, fmt.Sprintf("list-%d.test", i)))
	}
	d.reg.FailNextOn("domain:create", 1, 2306)
	if rep := d.call(0, d.keyA, "POST", "/v1/domains", domainBody("list-failed.test"), nil); rep.Status != http.StatusConflict {
		t.Fatalf("%s", rep)
	}
	rep := d.write(1, d.keyB, "POST", "/v1/domains", domainBody("bobs.test"))
	if rep.Status != http.StatusCreated {
		t.Fatalf("%s", rep)
	}
	var bobs api.Domain
	rep.Decode(t, &bobs)
	all := d.domains(d.keyA)
	if len(all) != 6 {
		t.Fatalf("A's domains: %d, want 6", len(all))
	}
	x := mine[0]
	key := func(scopes ...string) string {
		return d.keyOfA(t, api.KeyCreateRequest{Name: strings.Join(scopes, "+"), Scopes: scopes})
	}

	t.Run("scopes", func(t *testing.T) {
		type probe struct {
			method, path string
			body         any
		}
		probes := map[string]probe{
			"list":     {"GET", "/v1/domains", nil},
			"get":      {"GET", "/v1/domains/" + x.ID, nil},
			"check":    {"GET", "/v1/domains/check?name=free-name.test", nil},
			"patch":    {"PATCH", "/v1/domains/" + x.ID, map[string]any{"auto_renew": true}},
			"patch-ns": {"PATCH", "/v1/domains/" + x.ID, map[string]any{"nameservers": []string{"ns1.example.net", "ns2.example.net"}}},
			"order":    {"POST", "/v1/domains", domainBody("scoped.test")},
			"quote":    {"POST", "/v1/domains/quote", domainBody("scoped.test")},
			"transfer": {"POST", "/v1/domains/transfer", map[string]any{"name": "elsewhere.test", "auth_code": "Secret-123", "contact": contact}},
		}
		before := d.balance(d.keyA)
		for _, tc := range []struct {
			scopes  []string
			allowed []string
		}{
			{[]string{api.ScopeDomainsRead}, []string{"list", "get", "check"}},
			{[]string{api.ScopeDomainsWrite}, []string{"patch", "patch-ns"}},
			{[]string{api.ScopeBillingRead, api.ScopeAccountRead}, nil},
			{nil, []string{"list", "get", "check", "patch", "patch-ns"}}, // a default key
		} {
			k := key(tc.scopes...)
			for name, p := range probes {
				rep := d.call(1, k, p.method, p.path, p.body, nil)
				if slices.Contains(tc.allowed, name) {
					if rep.Status >= 300 {
						t.Errorf("%v: %s: %s", tc.scopes, name, rep)
					}
					continue
				}
				if rep.Status != http.StatusForbidden {
					t.Errorf("%v: %s: %s, want the 403 envelope", tc.scopes, name, rep)
				} else if e := rep.DecodeError(t); e.Err != "Forbidden" || e.Message == "" || e.Code == "" {
					t.Errorf("%v: %s: %s, want the 403 envelope", tc.scopes, name, rep)
				}
			}
		}
		if b := d.balance(d.keyA); b != before {
			t.Errorf("scoped keys moved A's balance %d → %d", before, b)
		}
		if n := len(d.named(d.keyA, "scoped.test")); n != 0 {
			t.Errorf("a key without orders:write bought scoped.test (%d)", n)
		}
	})

	t.Run("B's list shows none of A's", func(t *testing.T) {
		acc := d.accA.ID
		for _, path := range []string{"/v1/domains", "/v1/domains?limit=200", "/v1/domains?limit=1&page=1", "/v1/domains?limit=1&page=2", "/v1/domains?page=7",
			"/v1/domains?account=" + acc, "/v1/domains?account_id=" + acc, "/v1/domains?accountId=" + acc, "/v1/domains?name=" + x.Name, "/v1/domains?consistency=stale"} {
			for i := range 3 {
				rep := d.call(i, d.keyB, "GET", path, nil, nil)
				// Parameters the operation does not declare (account,
				// account_id, accountId, name) are refused as a whole
				// (400 invalid_query), the declared ones served.
				want := http.StatusOK
				if strings.Contains(path, "account") || strings.Contains(path, "name=") {
					want = http.StatusBadRequest
				}
				if rep.Status != want {
					t.Errorf("B %s: %s, want %d", path, rep, want)
					continue
				}
				for _, a := range all {
					if strings.Contains(string(rep.Body), a.ID) || strings.Contains(string(rep.Body), a.Name) {
						t.Errorf("B's %s on coordinator %d shows A's %s: %s", path, i, a.Name, rep)
					}
				}
			}
		}
		var l struct {
			Data  []api.Domain `json:"data"`
			Total int          `json:"total"`
		}
		d.call(0, d.keyB, "GET", "/v1/domains", nil, nil).Decode(t, &l)
		if l.Total != 1 || len(l.Data) != 1 || l.Data[0].ID != bobs.ID {
			t.Errorf("B's list: %+v", l)
		}
		// What the registry knows of a name is public; who holds it here is not.
		rep := d.call(0, d.keyB, "GET", "/v1/domains/check?name="+x.Name, nil, nil)
		if rep.Status != http.StatusOK || strings.Contains(string(rep.Body), x.ID) || strings.Contains(string(rep.Body), d.accA.ID) {
			t.Errorf("B's check of A's name: %s", rep)
		}
	})

	t.Run("pages", func(t *testing.T) {
		seen := map[string]int{}
		for page := 1; page <= 4; page++ {
			var l struct {
				Data  []api.Domain `json:"data"`
				Total int          `json:"total"`
			}
			d.get(t, page%3, d.keyA, fmt.Sprintf("/v1/domains?limit=2&page=%d", page), &l)
			if l.Total != len(all) {
				t.Errorf("page %d: total %d, want %d", page, l.Total, len(all))
			}
			if (page <= 3 && len(l.Data) != 2) || (page == 4 && len(l.Data) != 0) {
				t.Errorf("page %d of 2: %d domains", page, len(l.Data))
			}
			for _, x := range l.Data {
				seen[x.ID]++
			}
		}
		for _, a := range all {
			if seen[a.ID] != 1 {
				t.Errorf("%s on %d pages", a.Name, seen[a.ID])
			}
		}
		for _, q := range []struct{ query, names string }{
			{"limit=0", "limit"}, {"limit=201", "limit"}, {"limit=-1", "limit"}, {"limit=abc", "limit"}, {"limit=1.5", "limit"},
			{"limit=99999999999999999999", "limit"}, {"page=0", "page"}, {"page=-1", "page"}, {"page=x", "page"}, {"page=1e3", "page"},
		} {
			rep := d.call(0, d.keyA, "GET", "/v1/domains?"+q.query, nil, nil)
			if rep.Status != http.StatusBadRequest || !strings.Contains(string(rep.Body), q.names) {
				t.Errorf("?%s: %s, want a 400 naming %s", q.query, rep, q.names)
			}
		}
	})

	t.Run("the operator's view", func(t *testing.T) {
		p := d.c.Nodes[d.follower()]
		r := ctl(t, p, "--json", "domain", "list")
		var l []api.AdminDomain
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &l) != nil || len(l) != 7 {
			t.Fatalf("%s: %d domains", r, len(l))
		}
		owners := map[string]string{}
		for _, x := range l {
			owners[x.ID] = x.AccountID
		}
		if owners[x.ID] != d.accA.ID || owners[bobs.ID] != d.accB.ID {
			t.Errorf("owners %v", owners)
		}
		r = ctl(t, p, "--json", "domain", "list", "--account", d.accB.ID)
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &l) != nil || len(l) != 1 || l[0].ID != bobs.ID {
			t.Errorf("B's domains: %s", r)
		}
		// An account without domains: an empty JSON list, not null.
		accC, _, err := d.c.NewAccount(d.ctx, "audit-c@example.com")
		if err != nil {
			t.Fatal(err)
		}
		if r = ctl(t, p, "--json", "domain", "list", "--account", accC.ID); r.code != 0 || strings.TrimSpace(r.stdout) != "[]" {
			t.Errorf("the domains of an account without any: %s", r)
		}
		if r = ctl(t, p, "domain", "list", "--account", accC.ID); r.code != 0 || strings.Contains(r.stdout, "null") {
			t.Errorf("the domains of an account without any, as text: %s", r)
		}
		r = ctl(t, p, "--json", "domain", "show", x.ID)
		var one api.AdminDomain
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &one) != nil {
			t.Fatalf("%s", r)
		}
		if api := d.domain(d.keyA, x.ID); one.Name != api.Name || !slices.Equal(one.Nameservers, api.Nameservers) || one.Status != api.Status || one.AccountID != d.accA.ID || one.Op != nil {
			t.Errorf("show %+v; the API %+v", one, api)
		}
		if r = ctl(t, p, "domain", "show", x.ID); r.code != 0 || !strings.Contains(r.stdout, x.Name) || !strings.Contains(r.stdout, "active") {
			t.Errorf("show in text: %s", r)
		}
		for _, args := range [][]string{
			{"domain", "show", unknown(x.ID)},
			{"domain", "show", "../accounts"},
			{"domain", "show", x.Name}, // a name where the id goes
			{"domain", "list", "--account", "acc_nosuchaccount0000000000"},
			{"domain", "show"},
		} {
			r := ctl(t, p, args...)
			if r.code == 0 || r.stderr == "" || strings.Contains(r.stderr, "panic") {
				t.Errorf("%s: want a failure said on stderr", r)
			}
		}
		// An operation in flight is shown with its kind and transaction id.
		d.reg.DelayNextOn("domain:update", 1, 3*time.Second)
		done := make(chan framework.Reply, 1)
		go func() {
			// With an Idempotency-Key, sent again after an election's 503 (as
			// a client does; seen once at load ~43: no_leader, not a refusal)
			// and executed once.
			p := client.Resend{Codes: newLeaderCodes}
			r, _ := d.apis[0].TryResending(d.ctx, p, d.keyA, "PATCH", "/v1/domains/"+x.ID, map[string]any{"nameservers": []string{"ns3.example.net", "ns4.example.net"}}, map[string]string{"Idempotency-Key": "dom-surface-in-flight"})
			done <- r
		}()
		defer func() {
			if rep := <-done; rep.Status != http.StatusOK && rep.Status != http.StatusAccepted {
				t.Errorf("%s", rep)
			}
		}()
		framework.WaitFor(t, "the change shown in flight", 10*time.Second, 50*time.Millisecond, func() bool {
			r := ctl(t, p, "--json", "domain", "show", x.ID)
			var one api.AdminDomain
			if json.Unmarshal([]byte(r.stdout), &one) != nil {
				return false
			}
			return one.Op != nil && one.Op.Kind == "change" && one.Op.ClTRID != ""
		})
		d.settled(d.keyA)
	})
}
