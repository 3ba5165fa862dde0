// Package audit probes the newest public surfaces (orders, hosting, domains,
// actions, MCP) from outside, as a client written from the seeds and SPEC.md
// alone would: three hostplane-coordinator processes (tests/framework), a
// scripted agent node and a real EPP registry, two accounts. What it checks is
// what a customer would: another account's ids are 404s that look like
// unknown ids, an Idempotency-Key reused with another body is a 422 that
// charges nothing, bad bodies are 4xx that charge nothing, every /v1 answer
// carries the rate-limit headers, and a client that dribbles its request
// holds no handler past the listener's bounds.
package audit

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/client"
	"github.com/hostplane/hostplane/tests/framework"
)

// TestMain runs the tests, then stops the clusters they shared
// (shared_rig_test.go).
func TestMain(m *testing.M) {
	code := framework.Main(m)
	closeShared()
	os.Exit(code)
}

// Parallel tests. This package is the suite's longest (about 600 s; most
// tests on clusters they share, shared_rig_test.go, the others on clusters
// of their own). A few of its longest tests call t.Parallel: once every
// other test has run they run two at a time (go test's -parallel is
// GOMAXPROCS, 2 on the CI machine), each on its own cluster (never a shared
// one: the tests on a shared cluster run one at a time). Each spends
// most of its time waiting: retry periods, windows in which nothing may
// arrive, a key's expiry, a quarantine, elections after a leader kill; none
// bounds how fast the coordinators answer more tightly than seconds. A test
// joins them only when it is such a test and sets no environment
// (framework.TestClock's t.Setenv panics in a parallel test). Tests that time
// the coordinators stay sequential: slow_test.go, hook_fairness_test.go,
// streams_test.go, the rate-limit tests, dom_patch_test.go (a change raced
// against a registry delay), TestNetLastAddressRace (an order within the
// quarantine).

const (
	serverPrice  = 1200 // vps-a, a month
	hostingPrice = 600  // web-a, a month
	domainPrice  = 1000 // .test, a year
)

var contact = api.DomainContact{Name: "Ada Lovelace", Street: []string{"1 Analytical St"}, City: "Istanbul", CC: "TR", Email: "ada@example.com"}

type rig struct {
	t    *testing.T
	c    *framework.ProcessCluster
	ctx  context.Context
	apis []*framework.API // one per coordinator, answers checked against its /openapi.json
	accA api.Account
	keyA string
	accB api.Account
	keyB string
	reg  *framework.EPPD // the registry the coordinators use
	sim  *framework.Sim  // newRig's scripted node (hold, release)
}

// newRig starts the registry, three coordinators using it (each with the
// extra flags), the scripted node and the catalogue, and two accounts with
// every scope.
func newRig(t *testing.T, extra ...string) *rig {
	return newRigWith(t, framework.EPPDOptions{TLDs: []string{"test"}}, extra...)
}

// newRigWith is newRig with the registry started with o.
func newRigWith(t *testing.T, o framework.EPPDOptions, extra ...string) *rig {
	reg := framework.StartEPPD(t, o)
	c := auditCluster(t, reg, extra...)
	r := rigOn(t, c, "audit", 4*time.Minute)
	r.reg = reg
	r.sim = auditNode(c)
	auditCatalogue(r.ctx, t, c)
	return r
}

// auditCluster starts three coordinators using the registry reg, each with
// the extra flags, for t (stopped when t ends).
func auditCluster(t testing.TB, reg *framework.EPPD, extra ...string) *framework.ProcessCluster {
	t.Helper()
	epp := reg.CoordinatorFlags()
	return framework.NewProcessCluster(t, framework.ProcessOptions{N: 3, Bin: framework.Coordinator(t), RaftTimeout: framework.RaftTimeout,
		Agents: true, AgentPing: 200 * time.Millisecond, AgentGrace: 2 * time.Second, Webhooks: true,
		Extra: func(int, *framework.CoordinatorProcess) []string { return slices.Concat(epp, extra) }})
}

// auditNode starts newRig's scripted node (-kvm, -hosting) on c.
func auditNode(c *framework.ProcessCluster) *framework.Sim {
	return c.StartTestAgent("audit-node-1", strings.Join(c.AgentAddrs(), ","), "-kvm", "-hosting")
}

// auditCatalogue creates newRig's products on c: vps-a, web-a and test-a.
func auditCatalogue(ctx context.Context, t testing.TB, c *framework.ProcessCluster) {
	t.Helper()
	adm := c.AnyAlive(nil).Admin()
	for slug, p := range map[string]api.ProductRequest{
		"vps-a":  {Category: api.ProductVPS, NameEn: "VPS A", RetailMonthlyUsdCents: serverPrice, Specs: api.ProductSpecs{VCPU: 1, RAMMB: 256, DiskGB: 1}},
		"web-a":  {Category: api.ProductHosting, NameEn: "Web A", RetailMonthlyUsdCents: hostingPrice, Specs: api.ProductSpecs{Hosting: &api.HostingPlan{PHPWorkers: 2, PHPMemoryMiB: 64, MaxExecutionSeconds: 20, UploadMiB: 8, DiskMiB: 1024}}},
		"test-a": {Category: api.ProductDomain, NameEn: ".test", Tld: "test", RetailYearlyUsdCents: domainPrice},
	} {
		createProduct(ctx, t, adm, slug, p)
	}
}

// setUp makes what the test needs (create), sent again after a leadership
// 503 (framework.Resend) once list shows no item that is it: the request the
// 503 answered may have made it. Both make their requests with the ctx they
// are given (framework.Resend reads the answers' Retry-After through it).
func setUp[T, R any](ctx context.Context, t testing.TB, what string, list func(context.Context) ([]T, error), is func(T) bool,
	create func(context.Context) (R, error)) {
	t.Helper()
	if err := framework.Resend(ctx, func(ctx context.Context, again bool) error {
		if again {
			if l, err := list(ctx); err != nil || slices.ContainsFunc(l, is) {
				return err
			}
		}
		_, err := create(ctx)
		return err
	}); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// createProduct creates product slug through adm (setUp).
func createProduct(ctx context.Context, t testing.TB, adm *client.Admin, slug string, p api.ProductRequest) {
	t.Helper()
	setUp(ctx, t, "product "+slug, adm.Products, func(x api.AdminProduct) bool { return x.Slug == slug },
		func(ctx context.Context) (api.AdminProduct, error) { return adm.CreateProduct(ctx, slug, p) })
}

// rigOn makes a rig of the running cluster c: a context of within for the
// test and two accounts with every scope, prefix-a@ and prefix-b@example.com,
// and an API client of each coordinator that checks its answers against its
// /openapi.json.
func rigOn(t *testing.T, c *framework.ProcessCluster, prefix string, within time.Duration) *rig {
	ctx, cancel := context.WithTimeout(context.Background(), within)
	t.Cleanup(cancel)
	r := &rig{t: t, c: c, ctx: ctx}
	var err error
	if r.accA, r.keyA, err = c.NewAccount(ctx, prefix+"-a@example.com", api.AllScopes...); err != nil {
		t.Fatal(err)
	}
	if r.accB, r.keyB, err = c.NewAccount(ctx, prefix+"-b@example.com", api.AllScopes...); err != nil {
		t.Fatal(err)
	}
	for i := range c.Len() {
		r.apis = append(r.apis, framework.NewAPI(t, c.URL(i), nil))
	}
	return r
}

// follower is the index of a coordinator that is not the leader.
func (r *rig) follower() int {
	r.t.Helper()
	_, f := r.leaderAndFollower()
	return f
}

// leaderAndFollower is the index of the leader (known within 20 s) and of
// the coordinator after it, a follower.
func (r *rig) leaderAndFollower() (ld, f int) {
	r.t.Helper()
	ld, err := r.c.LeaderIndex(20 * time.Second)
	if err != nil {
		r.t.Fatal(err)
	}
	return ld, (ld + 1) % r.c.Len()
}

// call sends one request to coordinator i with key (send: again after a
// leadership change's 503, when that cannot apply it twice) and checks the
// answer carries the rate-limit headers SPEC.md promises on every response.
func (r *rig) call(i int, key, method, path string, body any, hdr map[string]string) framework.Reply {
	r.t.Helper()
	return r.limited(i, r.send(i, key, method, path, body, hdr, nil))
}

// send sends one request to coordinator i with key, and again after a 503
// a leadership change answers, as pkg/client's Resend says (a client's
// rule: for up to 15 s, at least as long as Retry-After asks, each resend
// logged): no leader, or one that could not confirm it still leads, or a
// new leader still starting (an election, as happens under load with the
// rig's Raft timeout). Such a request is sent again when that cannot
// apply it twice: a read, or a write with an Idempotency-Key (the cluster
// then executes it once), or what resendable (nil: client.Resendable)
// allows; the test's context ends the waits. Any other 503 (node_busy, node_offline, dns_unavailable, ...) is
// the product's answer, returned at once for the test to check.
func (r *rig) send(i int, key, method, path string, body any, hdr map[string]string, resendable func(string, any, http.Header) bool) framework.Reply {
	r.t.Helper()
	ctx := r.ctx
	if ctx == nil { // a rig without a cluster (review18_rig_test.go)
		ctx = context.Background()
	}
	p := client.Resend{Codes: newLeaderCodes, Resendable: resendable, Waiting: func(e *api.Error, pause time.Duration) {
		r.t.Logf("%s %s on coordinator %d: %v: sent again in %s", method, path, i, e, pause)
	}}
	rep, err := r.apis[i].TryResending(ctx, p, key, method, path, body, hdr)
	if err != nil {
		r.t.Fatal(err)
	}
	return rep
}

// newLeaderCodes are the 503s besides pkg/client's (no_leader,
// leader_unreachable) a leadership change answers, which the rig sends
// again alike: a read the leader could not confirm in time, and a new
// leader's "starting on this coordinator".
var newLeaderCodes = []string{"read_unconfirmed", "servers_unavailable", "webhooks_unavailable"}

// limited checks that rep, coordinator i's answer, carries the rate-limit
// headers SPEC.md promises on every response, and returns it.
func (r *rig) limited(i int, rep framework.Reply) framework.Reply {
	r.t.Helper()
	for _, h := range []string{"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"} {
		if rep.Header.Get(h) == "" {
			r.t.Errorf("%s on coordinator %d: no %s header", rep, i, h)
		}
	}
	return rep
}

// write sends a write that is not what the test looks at (it makes what the
// test then looks at: a webhook, a ticket, an order) as key through
// coordinator i, with an Idempotency-Key of its own when the operation
// honours one (openapi.json), so that send sends it again after a
// leadership change's 503 and the cluster executes it once. A PUT or PATCH
// without a key sets what its body says: sent again, it sets the same, so
// it too is sent again. A resent create may be answered by the replay of
// its first answer, which shows no secret the first showed (a webhook's, a
// hosting order's passwords): logged. A 409 idempotency_key_in_flight can
// only be its own earlier send, still being applied: sent again too
// (framework.ResendInFlight; without a key, none is answered). A test
// whose subject is a write's answer uses call; what a test makes in its own
// body before what it looks at goes through write.
func (r *rig) write(i int, key, method, path string, body any) framework.Reply {
	r.t.Helper()
	var hdr map[string]string
	if r.apis[i].HonoursIdempotencyKey(method, path) {
		hdr = map[string]string{"Idempotency-Key": "rig-" + rand.Text()}
	}
	var rep framework.Reply
	_ = framework.ResendInFlight(15*time.Second, func(bool) error {
		rep = r.limited(i, r.send(i, key, method, path, body, hdr, func(method string, body any, h http.Header) bool {
			return method == "PUT" || method == "PATCH" || client.Resendable(method, body, h)
		}))
		return rep.Err()
	})
	if rep.Header.Get("Idempotent-Replayed") == "true" {
		r.t.Logf("%s on coordinator %d: answered by the replay of its first send (no secret it showed)", rep, i)
	}
	return rep
}

// remove deletes path as key through coordinator i where the delete is not
// what the test looks at (a webhook removed before the test watches what
// it no longer gets). A DELETE leaves its resource deleted however often
// it is sent, so, unlike call, it is sent again after a leadership
// change's 503 (as send's rule) without an Idempotency-Key (DELETE
// /v1/webhooks/:id takes none); a 404 answered to a resend means an earlier
// send deleted it. Any other answer but a 200 fails t.
func (r *rig) remove(t testing.TB, i int, key, path string) {
	t.Helper()
	resent := 0
	p := client.Resend{Codes: newLeaderCodes, Resendable: func(string, any, http.Header) bool { return true },
		Waiting: func(e *api.Error, pause time.Duration) {
			resent++
			t.Logf("DELETE %s on coordinator %d: %v: sent again in %s", path, i, e, pause)
		}}
	ctx := r.ctx
	if ctx == nil { // a rig without a cluster (review18_rig_test.go)
		ctx = context.Background()
	}
	rep, err := r.apis[i].TryResending(ctx, p, key, "DELETE", path, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	r.limited(i, rep)
	if rep.Status == 200 || rep.Status == 404 && resent > 0 {
		return
	}
	t.Fatalf("delete %s: %s", path, rep)
}

// get is GET path as key through coordinator i, its answer decoded into v;
// any answer but a 200 fails t.
func (r *rig) get(t testing.TB, i int, key, path string, v any) framework.Reply {
	t.Helper()
	rep := r.call(i, key, "GET", path, nil, nil)
	if rep.Status != 200 {
		t.Fatalf("%s", rep)
	}
	rep.Decode(t, v)
	return rep
}

// accepted checks that rep, an action's request sent with key, was answered
// 202 (what names the request in a failure) and waits, up to within, until
// the action succeeded (through coordinator 0); it returns the answer.
func (r *rig) accepted(t testing.TB, what, key string, rep framework.Reply, within time.Duration) api.ActionAccepted {
	t.Helper()
	if rep.Status != 202 {
		t.Fatalf("%s: %s", what, rep)
	}
	var acc api.ActionAccepted
	rep.Decode(t, &acc)
	framework.WaitActionSuccess(t, r.apis[0].Client(key), acc.Action.ID, within)
	return acc
}

// ordered sends an order (POST path with body: serverBody, hostingBody) as
// key through coordinator i, checks it was answered 201 (what names the
// order in a failure), decodes the answer into order (an *api.ServerOrder,
// *api.HostingOrder) and waits, up to within, until the action it opened
// succeeded (through coordinator 0).
func (r *rig) ordered(t testing.TB, what string, i int, key, path string, body, order any, within time.Duration) {
	t.Helper()
	rep := r.write(i, key, "POST", path, body)
	if rep.Status != 201 {
		t.Fatalf("%s: %s", what, rep)
	}
	rep.Decode(t, order)
	var opened struct {
		Action api.Action `json:"action"`
	}
	rep.Decode(t, &opened)
	framework.WaitActionSuccess(t, r.apis[0].Client(key), opened.Action.ID, within)
}

// keyOfA is a new key of account A, made as req asks through a live
// coordinator's admin socket; a refusal fails t. A create answered with a
// leadership 503 (framework.Resend) may have made the key, whose secret
// then went with the lost answer: before it is sent again, the keys of A
// made since the first send that match req are revoked, as an operator
// would, and another is made. They can only be this call's: the list is
// read through a leader, which has settled every request an old leader was
// answered for (a new leader serves reads only after committing in its own
// term, which commits or drops what the old one left), and the tests on a
// cluster make A's keys one at a time. (Before, such a call failed t.)
func (r *rig) keyOfA(t testing.TB, req api.KeyCreateRequest) string {
	t.Helper()
	adm := r.c.AnyAlive(nil).Admin()
	var before map[string]bool // A's keys before the first create was sent
	var k api.KeyCreated
	err := framework.Resend(r.ctx, func(ctx context.Context, _ bool) error {
		keys, err := adm.Keys(ctx, r.accA.ID)
		if err != nil {
			return err
		}
		sent := before != nil
		if !sent {
			before = map[string]bool{}
		}
		for _, had := range keys {
			switch {
			case !sent:
				before[had.ID] = true
			case !before[had.ID] && had.RevokedAt == nil && madeAs(had, req):
				if _, err := adm.RevokeKey(ctx, had.ID); err != nil {
					return fmt.Errorf("revoke key %s, made by a request a leadership change answered (its secret is not known): %w", had.ID, err)
				}
				t.Logf("key %s (%q) was made by a create a leadership change answered: revoked, and another made", had.ID, had.Name)
			}
		}
		k, err = adm.CreateKey(ctx, r.accA.ID, req)
		return err
	})
	if err != nil {
		t.Fatalf("create key %q: %v", req.Name, err)
	}
	return k.Key
}

// madeAs says whether key k is as a create with req makes it (its name,
// "default" when none is asked; its rate limit; its scopes when asked).
func madeAs(k api.KeyInfo, req api.KeyCreateRequest) bool {
	name := req.Name
	if name == "" {
		name = "default"
	}
	return k.Name == name && k.RateLimitPerMin == req.RateLimitPerMin &&
		(len(req.Scopes) == 0 || slices.Equal(slices.Sorted(slices.Values(k.Scopes)), slices.Sorted(slices.Values(req.Scopes))))
}

// charged is what an account has been charged: its balance, invoices,
// servers, hosting accounts and domains, read through coordinator 0.
type charged struct {
	balance                             int64
	invoices, servers, hosting, domains int
}

func (r *rig) charged(key string) charged {
	r.t.Helper()
	var c charged
	total := func(path string) int {
		var p struct {
			Total int `json:"total"`
		}
		r.get(r.t, 0, key, path, &p)
		return p.Total
	}
	var w api.Wallet
	r.call(0, key, "GET", "/v1/billing/wallet", nil, nil).Decode(r.t, &w)
	c.balance = w.BalanceUsdCents
	c.invoices, c.servers, c.hosting, c.domains = total("/v1/billing/invoices"), total("/v1/servers"), total("/v1/hosting"), total("/v1/domains")
	return c
}

func serverBody(label string) map[string]any {
	return map[string]any{"plan_slug": "vps-a", "label": label, "hostname": label, "os_template": "base"}
}

func hostingBody(user string) map[string]any {
	return map[string]any{"plan_slug": "web-a", "domain": user + ".example.com", "username": user}
}

func domainBody(name string) map[string]any {
	return map[string]any{"name": name, "years": 1, "nameservers": []string{"ns1.example.net", "ns2.example.net"}, "contact": contact}
}

// aOwns is what account A bought in TestOrdersOutsideIn.
type aOwns struct {
	server, serverIP, hosting, domain, action, invoice string
	webhook, delivery, ticket                          string
	// host is a child name server's name inside A's domain ({name} of
	// /domains/{id}/hosts/{name}); A's domain has no such host.
	host string
}

// buy orders a server, hosting and a domain for A through a follower, each
// with an Idempotency-Key, and waits for the server's provisioning.
func (r *rig) buy() aOwns {
	t := r.t
	t.Helper()
	f := r.follower()
	var o aOwns
	// A webhook first, so the orders' events give it a delivery.
	hooks := framework.NewWebhookReceiver(t)
	var wh api.Webhook
	rep := r.write(f, r.keyA, "POST", "/v1/webhooks", api.WebhookCreateRequest{URL: hooks.URL + "/hook", Events: []string{"*"}})
	if rep.Status != 201 {
		t.Fatalf("webhook: %s", rep)
	}
	rep.Decode(t, &wh)
	o.webhook = wh.ID
	var tk api.Ticket
	if rep = r.write(f, r.keyA, "POST", "/v1/tickets", api.TicketCreateRequest{Subject: "A's", Message: "mine"}); rep.Status != 201 {
		t.Fatalf("ticket: %s", rep)
	}
	rep.Decode(t, &tk)
	o.ticket = tk.ID
	var so api.ServerOrder
	if rep = r.call(f, r.keyA, "POST", "/v1/servers", serverBody("web-1"), map[string]string{"Idempotency-Key": "srv-1"}); rep.Status != 201 {
		t.Fatalf("server order: %s", rep)
	}
	rep.Decode(t, &so)
	o.server, o.action, o.invoice = so.Server.ID, so.Action.ID, so.Invoice.ID
	var ho api.HostingOrder
	if rep = r.call(f, r.keyA, "POST", "/v1/hosting", hostingBody("shopa"), map[string]string{"Idempotency-Key": "web-1"}); rep.Status != 201 {
		t.Fatalf("hosting order: %s", rep)
	}
	rep.Decode(t, &ho)
	o.hosting = ho.Hosting.ID
	var d api.Domain
	if rep = r.call(f, r.keyA, "POST", "/v1/domains", domainBody("ada-audit.test"), map[string]string{"Idempotency-Key": "dom-1"}); rep.Status != 201 {
		t.Fatalf("domain order: %s", rep)
	}
	rep.Decode(t, &d)
	o.domain, o.host = d.ID, "ns1."+d.Name
	framework.WaitActionSuccess(t, r.apis[0].Client(r.keyA), o.action, 60*time.Second)
	framework.WaitFor(t, "a delivery of A's webhook", 30*time.Second, 100*time.Millisecond, func() bool {
		l, err := r.apis[0].Client(r.keyA).WebhookDeliveries(r.ctx, o.webhook, 1, 10)
		if err != nil || len(l.Data) == 0 {
			return false
		}
		o.delivery = l.Data[0].DeliveryID
		return true
	})
	// Without an address pool the server has none: the PTR routes get one
	// of the documentation range (B must get a 404 for the server first).
	o.serverIP = "192.0.2.10"
	var ips struct {
		Data []api.ServerIP `json:"data"`
	}
	r.get(t, 0, r.keyA, "/v1/servers/"+o.server+"/ips", &ips)
	if len(ips.Data) > 0 {
		o.serverIP = ips.Data[0].IP
	}
	return o
}

// probe is one operation /openapi.json lists under one of A's ids, with a
// body it accepts.
type probe struct {
	method, path, operationID, id string
	body                          map[string]any
	fill                          func(id string) string // the /v1 path with id in {id}
}

// bodiesUnderIDs are bodies the operations under an id accept (by method
// and path), so that what answers a call with another account's id is the
// id, not the body (probesUnder; probe60's MCP tools).
var bodiesUnderIDs = map[string]map[string]any{
	"POST /servers/{id}/snapshots":                     {"name": "snap"},
	"PATCH /servers/{id}/label":                        {"label": "mine"},
	"POST /servers/{id}/reinstall":                     {"osTemplate": "base", "os": "base"},
	"PUT /servers/{id}/ips/{ip}/ptr":                   {"ptr": "mail.example.com"},
	"PUT /hosting/{id}/php":                            {"php_version": "8.3"},
	"PUT /hosting/{id}/custom-domain":                  {"domain": "www.b-audit.example"},
	"PATCH /domains/{id}":                              {"auto_renew": false},
	"PUT /domains/{id}/hosts/{name}":                   {"addresses": []string{"8.8.8.8"}},
	"POST /servers/{id}/snapshots/{snapshotId}/revert": {},
	"PATCH /webhooks/{id}":                             {"description": "mine"},
	"POST /tickets/{id}/reply":                         {"body": "mine"},
}

// probesUnder lists every operation of /openapi.json under A's server,
// hosting, domain, action and invoice ids.
func (r *rig) probesUnder(own aOwns) []probe {
	r.t.Helper()
	ids := map[string]string{"/servers/": own.server, "/hosting/": own.hosting, "/domains/": own.domain, "/actions/": own.action, "/billing/invoices/": own.invoice,
		"/webhooks/": own.webhook, "/tickets/": own.ticket}
	var out []probe
	for _, op := range r.operations() {
		var id string
		for prefix, v := range ids {
			if strings.HasPrefix(op.path, prefix+"{id}") {
				id = v
			}
		}
		if id == "" {
			continue
		}
		p := probe{method: op.method, path: op.path, operationID: op.OperationID, id: id, body: bodiesUnderIDs[op.method+" "+op.path]}
		p.fill = func(id string) string {
			return "/v1" + strings.NewReplacer("{id}", id, "{ip}", own.serverIP, "{snapshotId}", "snap_0000000000000000", "{action}", "reboot", "{deliveryId}", own.delivery, "{name}", own.host).Replace(op.path)
		}
		out = append(out, p)
	}
	return out
}

// openAPIOp is an operation of /openapi.json.
type openAPIOp struct {
	method, path string // the method in upper case
	OperationID  string `json:"operationId"`
	Scope        string `json:"x-scope"`
	AltScope     string `json:"x-alt-scope"`
	// open: no security (served without a key); idem: it declares the
	// Idempotency-Key header; isBody: it has a requestBody.
	open, idem, isBody bool
}

// operations lists the operations of the first coordinator's
// /openapi.json (a path's other members, such as its parameters, left out).
func (r *rig) operations() []openAPIOp {
	r.t.Helper()
	rep := r.apis[0].Call("", "GET", "/openapi.json", nil, nil)
	if rep.Status != 200 {
		r.t.Fatalf("GET /openapi.json: %s", rep)
	}
	return parseOperations(r.t, rep.Body)
}

// parseOperations reads the operations of an /openapi.json document as a
// client generator does, sorted by path and method: each one's operationId,
// scopes (x-scope, x-alt-scope), whether it requires no security, declares
// an Idempotency-Key (a parameter of its own or a $ref to one) and takes a
// body.
func parseOperations(t testing.TB, body []byte) []openAPIOp {
	t.Helper()
	var doc struct {
		Paths      map[string]map[string]json.RawMessage `json:"paths"`
		Components struct {
			Parameters map[string]struct {
				Name string `json:"name"`
				In   string `json:"in"`
			} `json:"parameters"`
		} `json:"components"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatalf("/openapi.json: %v", err)
	}
	var out []openAPIOp
	for path, ops := range doc.Paths {
		for method, raw := range ops {
			var op struct {
				openAPIOp
				Security *[]map[string]any `json:"security"`
				Params   []struct {
					Ref  string `json:"$ref"`
					Name string `json:"name"`
					In   string `json:"in"`
				} `json:"parameters"`
				Body json.RawMessage `json:"requestBody"`
			}
			if method == "parameters" || json.Unmarshal(raw, &op) != nil {
				continue
			}
			o := op.openAPIOp
			o.method, o.path = strings.ToUpper(method), path
			o.open, o.isBody = op.Security != nil && len(*op.Security) == 0, len(op.Body) > 0
			for _, p := range op.Params {
				if p.Ref != "" {
					c := doc.Components.Parameters[strings.TrimPrefix(p.Ref, "#/components/parameters/")]
					p.Name, p.In = c.Name, c.In
				}
				if p.In == "header" && p.Name == "Idempotency-Key" {
					o.idem = true
				}
			}
			out = append(out, o)
		}
	}
	if len(out) == 0 {
		t.Fatalf("/openapi.json lists no operation")
	}
	slices.SortFunc(out, func(a, b openAPIOp) int { return strings.Compare(a.path+" "+a.method, b.path+" "+b.method) })
	return out
}

// notIn fails the test when text shows any of A's ids (or the others given).
func (o aOwns) notIn(t *testing.T, what, text string, others ...string) {
	t.Helper()
	for _, a := range append([]string{o.server, o.hosting, o.domain, o.action, o.invoice, o.serverIP, o.webhook, o.delivery, o.ticket}, others...) {
		if strings.Contains(text, a) {
			t.Errorf("%s: the answer shows %s: %.300s", what, a, text)
		}
	}
}

// sameError reports whether two error bodies, one for id and one for
// unknown(id), say the same thing: status, code and message alike once the
// id asked is put back in place of the unknown one (request ids aside).
func sameError(mine, none, id string) bool {
	var me, ne api.Error
	if json.Unmarshal([]byte(mine), &me) != nil || json.Unmarshal([]byte(none), &ne) != nil {
		return false
	}
	return me.StatusCode == ne.StatusCode && me.Code == ne.Code && me.Message == strings.ReplaceAll(ne.Message, unknown(id), id)
}

// snake is an operationId as its MCP tool's name (getServer → get_server,
// listServerIPs → list_server_ips).
func snake(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' {
			if i > 0 && s[i-1] >= 'a' && s[i-1] <= 'z' {
				b.WriteByte('_')
			}
			c += 'a' - 'A'
		}
		b.WriteByte(c)
	}
	return b.String()
}

// unknown is a well-formed id of the same kind as id that names nothing:
// its last character changed.
func unknown(id string) string {
	last := id[len(id)-1]
	c := byte('a')
	if last == 'a' {
		c = 'b'
	}
	return id[:len(id)-1] + string(c)
}
