package audit

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// p63Bodies are B's bodies on the routes under A's ids where they differ
// from bodiesUnderIDs: each would change what A's reads show (A's name
// servers, A's custom domain, A's label) if it were applied to A's.
var p63Bodies = map[string]map[string]any{
	"PATCH /domains/{id}":             {"nameservers": []string{"ns1.b-p63.example", "ns2.b-p63.example"}, "auto_renew": false, "transfer_lock": false},
	"PUT /hosting/{id}/custom-domain": {"domain": "www.b-p63.example"},
	"PATCH /servers/{id}/label":       {"label": "b-p63"},
}

// TestProbe63OtherAccountsServiceWritesThroughAFollowerAcrossALeaderKill:
// probe62's failover cell on the routes it left (it had a light rig:
// tickets, webhooks, keys): B's key (every scope, servers:destroy and
// hosting:destroy included) with A's ids on every operation /openapi.json
// lists under a server, hosting account, domain, invoice and action id —
// power, snapshots, reinstall, terminate, label, PTR, console, password
// reset; custom-domain PUT, verify and DELETE, suspend, PHP, SSL retry,
// terminate; a domain's PATCH; an invoice's and an action's read — sent
// over and over to a follower (which forwards writes to the leader) while
// the leader is killed and another elected. Each answer is SPEC.md's 404
// ("absent or another account's"; never a 403 that confirms the id is
// someone's) in the error envelope, or a leadership 503 the client may
// send again, and shows nothing of A's. B's own account-wide lists
// (GET /v1/servers/ips, /v1/billing/invoices) show nothing of A's either.
// Afterwards, the killed coordinator restarted, A's server, its IPs and
// snapshots, A's hosting account with its custom domain, A's domain with its
// name servers, A's wallet, transactions, invoices and actions as each of
// the three coordinators holds them (?consistency=stale) are what they
// were before, and A's server still runs.
func TestProbe63OtherAccountsServiceWritesThroughAFollowerAcrossALeaderKill(t *testing.T) {
	r := newRig(t, "--rate-limit", "100000", "--ip-rate-limit", "1000000")
	r.c.Credit(r.ctx, r.accA.ID, 10*serverPrice)
	own := r.buy()
	// A's custom domain, so that B's PUT, verify and DELETE have one to
	// change.
	if rep := r.write(0, r.keyA, "PUT", "/v1/hosting/"+own.hosting+"/custom-domain", map[string]any{"domain": "www.a-p63.example"}); rep.Status/100 != 2 {
		t.Fatalf("A's custom domain: %s", rep)
	}
	var dom struct {
		Name string `json:"name"`
	}
	r.get(t, 0, r.keyA, "/v1/domains/"+own.domain, &dom)
	markers := []string{r.accA.ID, r.accA.Email, own.serverIP, own.server, own.hosting, own.domain, own.invoice, own.action,
		"www.a-p63.example", "shopa.example.com", dom.Name, "web-1"}
	state := []string{"/v1/servers/" + own.server, "/v1/servers/" + own.server + "/ips", "/v1/servers/" + own.server + "/snapshots",
		"/v1/servers/ips", "/v1/hosting/" + own.hosting, "/v1/domains/" + own.domain, "/v1/billing/wallet",
		"/v1/billing/wallet/transactions", "/v1/billing/invoices", "/v1/actions?limit=200"}
	before := p62Agreed(t, r, r.keyA, state, "A's state on every coordinator before")
	for _, p := range p62Stale(state) {
		if !strings.HasPrefix(before[p], "200 ") {
			t.Fatalf("A's %s before: %.300s", p, before[p])
		}
	}
	if !strings.Contains(before[p62Stale(state)[4]], "www.a-p63.example") {
		t.Fatalf("A's hosting does not show its custom domain: %.400s", before[p62Stale(state)[4]])
	}

	type op struct{ method, path, target, body string }
	var ops []op
	for _, p := range r.probesUnder(own) {
		if strings.HasPrefix(p.path, "/webhooks/") || strings.HasPrefix(p.path, "/tickets/") {
			continue // probe62's
		}
		b := p.body
		if o, ok := p63Bodies[p.method+" "+p.path]; ok {
			b = o
		}
		var body string
		if b != nil {
			j, _ := json.Marshal(b)
			body = string(j)
		} else if p.method != "GET" && p.method != "DELETE" {
			body = "{}"
		}
		ops = append(ops, op{p.method, p.path, p.fill(p.id), body})
	}
	var routes []string
	for _, o := range ops {
		routes = append(routes, o.method+" "+o.path)
	}
	for _, want := range []string{"DELETE /servers/{id}", "POST /servers/{id}/reinstall", "POST /servers/{id}/power/{action}",
		"POST /servers/{id}/snapshots", "PUT /servers/{id}/ips/{ip}/ptr", "PUT /hosting/{id}/custom-domain",
		"POST /hosting/{id}/custom-domain/verify", "DELETE /hosting/{id}/custom-domain", "PATCH /domains/{id}",
		"GET /billing/invoices/{id}", "DELETE /hosting/{id}"} {
		if !slices.Contains(routes, want) {
			t.Fatalf("/openapi.json does not list %s under an id (it lists %q)", want, routes)
		}
	}

	ld, f := r.leaderAndFollower()
	kill := p62KillSoon(r, ld)
	for kill.more() {
		for _, o := range ops {
			kill.refused(t, f, r.keyB, "p63", o.method, o.path, o.target, o.body, markers)
		}
		// B's own lists: B's, nothing of A's.
		for _, l := range []string{"/v1/servers/ips", "/v1/billing/invoices", "/v1/servers", "/v1/hosting", "/v1/domains"} {
			rep := kill.send(t, f, r.keyB, "p63", "GET", l, "")
			if rep.status == 503 {
				continue
			}
			if rep.status != 200 {
				t.Errorf("B's GET %s through follower %d: %s; want a 200", l, f, rep)
			}
			for _, m := range markers {
				if strings.Contains(string(rep.body), m) {
					t.Errorf("B's GET %s through follower %d shows A's %q: %s", l, f, m, rep)
				}
			}
		}
		if t.Failed() {
			break
		}
	}
	t.Logf("%d requests of B with A's ids (%d routes) sent through coordinator %d across the kill of %d: %v", kill.sent, len(ops), f, ld, kill.answers)
	kill.restartUnchanged(t, r.keyA, state, before, "B's requests", 800)
	for i := range r.c.Len() {
		var s struct {
			Status string `json:"status"`
		}
		r.get(t, i, r.keyA, "/v1/servers/"+own.server, &s)
		if s.Status != "running" {
			t.Errorf("coordinator %d: A's server after B's requests: %q; want running", i, s.Status)
		}
	}
}
