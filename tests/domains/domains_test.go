// Package domains checks domain registration (issue 16) through three
// hostplane-coordinator processes (tests/framework) against the EPP test
// registry (tests/eppd) over TLS, with the coordinator's own EPP client:
// registration paid from the wallet, nameserver changes pushed to the
// registry and rolled back when it cannot be reached, a leader killed
// between the registry call and the commit, double payment, bad names.
// Every /v1 answer is checked against the coordinator's /openapi.json; the
// registry's side is read with an EPP client of its own and the registry's
// counters.
package domains

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/client"
	"github.com/hostplane/hostplane/tests/eppd"
	"github.com/hostplane/hostplane/tests/framework"
)

func TestMain(m *testing.M) { os.Exit(framework.Main(m)) }

const yearly = 1000 // .test, cents a year

const contact = `"contact":{"name":"Ada Lovelace","street":["1 Analytical St"],"city":"Istanbul","cc":"TR","email":"ada@example.com"}`

type rig struct {
	t    *testing.T
	c    *framework.ProcessCluster
	reg  *framework.EPPD
	ctx  context.Context
	acc  string
	key  string
	apis []*framework.API
}

func failpointFile(p *framework.CoordinatorProcess) string { return p.DataDir + ".failpoint" }

// newRig starts the registry (with more registrar accounts, clID → password,
// besides the coordinators') and three coordinators using it.
func newRig(t *testing.T, others ...map[string]string) *rig { return newRigFlags(t, nil, others...) }

// newRigFlags is newRig with extra coordinator flags.
func newRigFlags(t *testing.T, flags []string, others ...map[string]string) *rig {
	clients := map[string]string{framework.EPPDClientID: framework.EPPDPassword}
	for _, o := range others {
		for id, pw := range o {
			clients[id] = pw
		}
	}
	reg := framework.StartEPPD(t, framework.EPPDOptions{TLDs: []string{"test"}, Clients: clients})
	epp := reg.CoordinatorFlags()
	c := framework.NewProcessCluster(t, framework.ProcessOptions{N: 3, Bin: framework.Coordinator(t), RaftTimeout: framework.RaftTimeout,
		Webhooks: true, Extra: func(i int, p *framework.CoordinatorProcess) []string {
			return slices.Concat(epp, []string{"--failpoint-file", failpointFile(p)}, flags)
		}})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	adm := c.AnyAlive(nil).Admin()
	if _, err := adm.CreateProduct(ctx, "domain-test", api.ProductRequest{Category: api.ProductDomain, NameEn: ".test", Tld: "test", RetailYearlyUsdCents: yearly}); err != nil {
		t.Fatal(err)
	}
	acc, key, err := c.NewAccount(ctx, "domains@example.com", api.ScopeDomainsRead, api.ScopeDomainsWrite, api.ScopeOrdersWrite,
		api.ScopeBillingRead, api.ScopeWebhooksWrite, api.ScopeWebhooksRead)
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, c: c, reg: reg, ctx: ctx, acc: acc.ID, key: key}
	for i := range c.Len() {
		r.apis = append(r.apis, framework.NewAPI(t, c.URL(i), nil))
	}
	return r
}

// call sends a request to coordinator i (any alive one when i < 0), and
// again after a 503 an election answers (an election, as happens under load
// with the rig's Raft timeout) as pkg/client's Resend says: for up to
// 15 s, at least as long as Retry-After asks, when that cannot apply it
// twice. A write the caller gives no Idempotency-Key gets one of the rig's
// own (when the operation honours one), so that it too is sent again and
// the cluster executes it once. A request that got no answer fails the
// test, naming it.
func (r *rig) call(i int, method, path, body string, hdr map[string]string) framework.Reply {
	r.t.Helper()
	if i < 0 {
		for j := range r.c.Len() {
			if r.c.Running(j) {
				i = j
				break
			}
		}
	}
	if method != http.MethodGet && hdr["Idempotency-Key"] == "" && r.apis[i].HonoursIdempotencyKey(method, path) {
		hdr = maps.Clone(hdr)
		if hdr == nil {
			hdr = map[string]string{}
		}
		hdr["Idempotency-Key"] = "rig-" + rand.Text()
	}
	p := client.Resend{Codes: electionCodes, Waiting: func(e *api.Error, pause time.Duration) {
		r.t.Logf("%s %s on coordinator %d: %v: sent again in %s", method, path, i, e, pause)
	}}
	rep, err := r.apis[i].TryResending(r.ctx, p, r.key, method, path, body, hdr)
	if err != nil {
		r.t.Fatalf("%s %s: %v", method, path, err)
	}
	return rep
}

// electionCodes are the 503s besides pkg/client's (no_leader,
// leader_unreachable) that call sends again: a read the leader could not
// confirm in time, a new leader's "starting on this coordinator", and a
// registry that could not be asked (nothing was charged).
var electionCodes = []string{"read_unconfirmed", "servers_unavailable", "webhooks_unavailable", "registry_unavailable"}

func (r *rig) credit(cents int64) { r.t.Helper(); r.c.Credit(r.ctx, r.acc, cents) }

func (r *rig) balance() int64 {
	r.t.Helper()
	var w api.Wallet
	r.call(-1, "GET", "/v1/billing/wallet", "", nil).Decode(r.t, &w)
	return w.BalanceUsdCents
}

func (r *rig) domain(id string) api.Domain {
	r.t.Helper()
	var d api.Domain
	rep := r.call(-1, "GET", "/v1/domains/"+id, "", nil)
	if rep.Status != 200 {
		r.t.Fatalf("GET domain: %s", rep)
	}
	rep.Decode(r.t, &d)
	return d
}

// registry is the registry's own record of name (its admin endpoint).
func (r *rig) registry(name string) eppd.AdminDomain {
	r.t.Helper()
	d := r.reg.Domain(name)
	if d == nil {
		r.t.Fatalf("the registry has no %s", name)
	}
	return *d
}

// registered registers name for a year; the registration must succeed.
func (r *rig) registered(name string) api.Domain {
	r.t.Helper()
	rep := r.register(name, 1, nil)
	if rep.Status != 201 {
		r.t.Fatalf("register %s: %s", name, rep)
	}
	var d api.Domain
	rep.Decode(r.t, &d)
	return d
}

func (r *rig) register(name string, years int, hdr map[string]string) framework.Reply {
	r.t.Helper()
	return r.call(-1, "POST", "/v1/domains", fmt.Sprintf(`{"name":%q,"years":%d,"nameservers":["ns1.example.net","ns2.example.net"],%s}`, name, years, contact), hdr)
}

// TestDomainLifecycle: bad names are refused with nothing charged or sent;
// a registration is paid and registered (domain.registered with the seed's
// fields); a nameserver change is applied at the registry; with the
// registry down a change is rolled back with the reason and the registry
// keeps the old delegation; with it back the change is applied; one
// Idempotency-Key orders once; concurrent orders beyond the wallet register
// exactly what it pays.
func TestDomainLifecycle(t *testing.T) {
	r := newRig(t)
	hooks := framework.NewWebhookReceiver(t)
	if rep := r.call(-1, "POST", "/v1/webhooks", fmt.Sprintf(`{"url":%q,"events":["domain.registered"]}`, hooks.URL), nil); rep.Status != 201 {
		t.Fatalf("webhook: %s", rep)
	}
	r.credit(3 * yearly)

	for body, field := range map[string]string{
		`{"name":"pаypal.test",` + contact + `}`:                                                          "name", // a Cyrillic а among Latin letters
		`{"name":"ab--cd.test",` + contact + `}`:                                                          "name", // -- in the 3rd and 4th place
		`{"name":"-ada.test",` + contact + `}`:                                                            "name",
		`{"name":"` + strings.Repeat("a", 64) + `.test",` + contact + `}`:                                 "name", // a 64-character label
		`{"name":"` + strings.Repeat("abcdefghi.", 25) + `test",` + contact + `}`:                         "name", // 254 characters
		`{"name":"ada.example",` + contact + `}`:                                                          "name", // TLD not offered
		`{"name":"www.ada.test",` + contact + `}`:                                                         "name", // not one label under .test
		`{"name":"ada.test","years":11,` + contact + `}`:                                                  "years",
		`{"name":"ada.test","nameservers":["ns1.example.net"],` + contact + `}`:                           "nameservers",
		`{"name":"ada.test","contact":{"name":"Ada","street":["x"],"city":"c","cc":"TR","email":"nope"}}`: "contact.email",
	} {
		rep := r.call(-1, "POST", "/v1/domains", body, nil)
		if rep.Status != 400 || !strings.Contains(string(rep.Body), `\"`+field+`\"`) {
			t.Errorf("POST %s: %s (want 400 naming %s)", body, rep, field)
		}
	}
	if b := r.balance(); b != 3*yearly {
		t.Fatalf("refused orders charged: balance %d", b)
	}
	if st := r.reg.Stats(); st.Applied != 0 {
		t.Fatalf("refused orders reached the registry: %+v", st)
	}

	rep := r.register("ada.test", 2, map[string]string{"Idempotency-Key": "ada-1"})
	if rep.Status != 201 {
		t.Fatalf("register: %s", rep)
	}
	var d api.Domain
	rep.Decode(t, &d)
	if d.Status != api.DomainActive || d.ExpiresAt == nil || d.PeriodYears != 2 {
		t.Fatalf("registered %+v", d)
	}
	onReg := r.registry("ada.test")
	if !onReg.ExDate.Equal(*d.ExpiresAt) || strings.Join(onReg.NS, ",") != "ns1.example.net,ns2.example.net" {
		t.Fatalf("registry %+v, ours %+v", onReg, d)
	}
	ev := hooks.Wait(t, "domain.registered", 30*time.Second, func(m map[string]any) bool { return m["domainId"] == d.ID }).Data
	evExp, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(ev["expiresAt"]))
	if ev["domain"] != "ada.test" || ev["periodYears"] != float64(2) || !evExp.Equal(*d.ExpiresAt) || len(ev) != 4 {
		t.Fatalf("domain.registered payload %v", ev)
	}
	// The same Idempotency-Key: the first answer (201, the registered
	// domain as it was answered), nothing charged twice.
	if again := r.register("ada.test", 2, map[string]string{"Idempotency-Key": "ada-1"}); again.Status != 201 || again.Header.Get("Idempotent-Replayed") != "true" || !jsonEqual(again.Body, rep.Body) {
		t.Fatalf("replay: %s, want the first answer %s", again, rep)
	}
	if b := r.balance(); b != yearly {
		t.Fatalf("balance %d after one 2-year registration, want %d", b, yearly)
	}

	patchWith := func(hdr map[string]string, ns ...string) framework.Reply {
		b, _ := json.Marshal(map[string]any{"nameservers": ns})
		return r.call(-1, "PATCH", "/v1/domains/"+d.ID, string(b), hdr)
	}
	patch := func(ns ...string) framework.Reply { return patchWith(nil, ns...) }
	if rep := patch("ns1.hosting.net", "ns2.hosting.net"); rep.Status != 200 || !strings.Contains(string(rep.Body), `"status":"applied"`) {
		t.Fatalf("nameserver change: %s", rep)
	}
	if ns := strings.Join(r.registry("ada.test").NS, ","); ns != "ns1.hosting.net,ns2.hosting.net" {
		t.Fatalf("registry nameservers %s", ns)
	}

	r.reg.Down()
	downKey := map[string]string{"Idempotency-Key": "ns-down"}
	rep = patchWith(downKey, "ns1.third.net", "ns2.third.net")
	if rep.Status != 409 || rep.Code() != "change_failed" || !strings.Contains(string(rep.Body), "could not be reached") {
		t.Fatalf("change with the registry down: %s", rep)
	}
	got := r.domain(d.ID)
	if got.Change == nil || got.Change.Status != api.ChangeFailed || !strings.Contains(got.Change.Reason, "could not be reached") ||
		strings.Join(got.Nameservers, ",") != "ns1.hosting.net,ns2.hosting.net" {
		t.Fatalf("after the rollback: %+v %+v", got, got.Change)
	}
	r.reg.Up()
	// Its Idempotency-Key replays that 409, not the 200 'pending' its
	// command stored, and changes nothing.
	if again := patchWith(downKey, "ns1.third.net", "ns2.third.net"); again.Status != 409 || again.Code() != "change_failed" || again.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay of the rolled-back change: %s, want the first answer %s", again, rep)
	}
	if ns := strings.Join(r.registry("ada.test").NS, ","); ns != "ns1.hosting.net,ns2.hosting.net" {
		t.Fatalf("the registry changed behind the rollback: %s", ns)
	}
	upKey := map[string]string{"Idempotency-Key": "ns-up"}
	rep = patchWith(upKey, "ns1.third.net", "ns2.third.net")
	if rep.Status != 200 || !strings.Contains(string(rep.Body), `"status":"applied"`) {
		t.Fatalf("change with the registry back: %s", rep)
	}
	if again := patchWith(upKey, "ns1.third.net", "ns2.third.net"); again.Status != 200 || !jsonEqual(again.Body, rep.Body) {
		t.Fatalf("replay of the applied change: %s, want the first answer %s", again, rep)
	}
	if ns := strings.Join(r.registry("ada.test").NS, ","); ns != "ns1.third.net,ns2.third.net" {
		t.Fatalf("registry nameservers %s", ns)
	}

	// Eight concurrent orders against a wallet paying two: exactly two
	// registered, six 402 naming the shortfall, none at the registry.
	r.credit(yearly) // 2000: two one-year registrations
	before := r.reg.Stats().Applied
	var mu sync.Mutex
	status := map[int]int{}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			rep := r.call(i%3, "POST", "/v1/domains", fmt.Sprintf(`{"name":"race%d.test",%s}`, i, contact), nil)
			mu.Lock()
			status[rep.Status]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if status[201] != 2 || status[402] != 6 {
		t.Fatalf("concurrent orders: %v", status)
	}
	if b := r.balance(); b != 0 {
		t.Fatalf("balance %d after the concurrent orders", b)
	}
	// Two registrations: a contact and a domain each.
	if st := r.reg.Stats(); st.Applied-before != 4 {
		t.Fatalf("registry applied %d commands for two registrations, want 4 (%+v)", st.Applied-before, st)
	}
}

// TestLeaderKilledBetweenCallAndCommit: the leader is killed after the
// registry applied its call and before it committed the end; the next
// leader repeats the call with the same client transaction id and ends the
// operation; the registry applied each command once. First a nameserver
// change, then a registration (charged once).
func TestLeaderKilledBetweenCallAndCommit(t *testing.T) {
	r := newRig(t)
	r.credit(2 * yearly)
	d := r.registered("kill.test")

	var restart []int
	kill := func(what string, send func(i int)) {
		t.Helper()
		li := r.c.WaitLeader(20 * time.Second)
		leader := r.c.Nodes[li]
		if err := os.WriteFile(failpointFile(leader), []byte("domainreg:after-call"), 0o600); err != nil {
			t.Fatal(err)
		}
		send((li + 1) % r.c.Len()) // through a follower
		select {
		case <-leader.Exited():
		case <-time.After(30 * time.Second):
			t.Fatalf("%s: the leader did not reach the failpoint", what)
		}
		r.c.Kill(li) // reap it in the framework's books
		t.Logf("%s: leader %s killed after the registry call", what, leader.ID)
		restart = append(restart, li)
	}

	st0 := r.reg.Stats()
	kill("nameserver change", func(i int) {
		go r.apis[i].Try(r.key, "PATCH", "/v1/domains/"+d.ID, `{"nameservers":["ns1.after.net","ns2.after.net"]}`, nil)
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		got := r.domain(d.ID)
		if got.Change != nil && got.Change.Status == api.ChangeApplied && got.Nameservers[0] == "ns1.after.net" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the change was not ended by the next leader: %+v %+v", got, got.Change)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if st := r.reg.Stats(); st.Applied-st0.Applied != 1 {
		t.Fatalf("the registry applied %d updates, want 1 (%+v)", st.Applied-st0.Applied, st)
	}
	if ns := strings.Join(r.registry("kill.test").NS, ","); ns != "ns1.after.net,ns2.after.net" {
		t.Fatalf("registry nameservers %s", ns)
	}
	if txs := r.reg.Transactions("domain:update", "kill.test"); len(txs) != 1 {
		t.Fatalf("registry transactions updating kill.test: %+v", txs)
	}

	// The killed coordinator comes back (a quorum for the next kill).
	for _, i := range restart {
		r.c.Restart(i)
		r.c.WaitReady(i, 30*time.Second)
	}

	// A registration: the new leader repeats domain:create with the same
	// clTRID and gets the registry's first answer.
	st0 = r.reg.Stats()
	kill("registration", func(i int) {
		go r.apis[i].Try(r.key, "POST", "/v1/domains", fmt.Sprintf(`{"name":"kill2.test",%s}`, contact), nil)
	})
	deadline = time.Now().Add(60 * time.Second)
	var list api.Page[api.Domain]
	for {
		list = api.Page[api.Domain]{}
		r.call(-1, "GET", "/v1/domains", "", nil).Decode(t, &list)
		var k2 *api.Domain
		for i := range list.Data {
			if list.Data[i].Name == "kill2.test" {
				k2 = &list.Data[i]
			}
		}
		if k2 != nil && k2.Status == api.DomainActive {
			if !r.registry("kill2.test").ExDate.Equal(*k2.ExpiresAt) {
				t.Fatalf("expiry differs from the registry's")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the registration was not ended by the next leader: %+v", k2)
		}
		time.Sleep(200 * time.Millisecond)
	}
	st := r.reg.Stats()
	if st.Applied-st0.Applied != 2 || st.Replayed-st0.Replayed < 1 {
		t.Fatalf("registry: %d commands applied (want 2: the contact and the domain), %d replayed (want ≥ 1): %+v", st.Applied-st0.Applied, st.Replayed-st0.Replayed, st)
	}
	if b := r.balance(); b != 0 {
		t.Fatalf("balance %d: two one-year registrations from 2000 should leave 0", b)
	}
	if list.Total != 2 {
		t.Fatalf("%d domains, want 2", list.Total)
	}
	// On the registry's side: one domain:create of kill2.test, under one
	// clTRID (the new leader repeated it, never a fresh one).
	if txs := r.reg.Transactions("domain:create", "kill2.test"); len(txs) != 1 {
		t.Fatalf("registry transactions creating kill2.test: %+v", txs)
	}
}

// jsonEqual reports whether a and b are the same JSON value.
func jsonEqual(a, b []byte) bool {
	var x, y any
	return json.Unmarshal(a, &x) == nil && json.Unmarshal(b, &y) == nil && reflect.DeepEqual(x, y)
}
