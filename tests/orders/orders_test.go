// Package orders checks the money path of POST /v1/servers and POST
// /v1/hosting through /v1 on three hostplane-coordinator processes
// (tests/framework) with a scripted agent node (real sessions; every action
// succeeds but a hosting.create for a fail- domain): concurrent orders never
// overdraw the wallet, an Idempotency-Key orders once, bad input changes
// nothing, a failed provisioning is refunded.
package orders

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/client"
	"github.com/hostplane/hostplane/tests/framework"
)

func TestMain(m *testing.M) { framework.Main(m) }

const price = 900 // vps-t at 1200 retail, 25 % reseller discount

type rig struct {
	t   testing.TB
	c   *framework.ProcessCluster
	ctx context.Context
	key string
	acc string
	sim *framework.Sim // the scripted agent node
}

func (r *rig) api(i int) *client.Client { return r.c.Client(i%r.c.Len(), r.key) }

// newRig starts the cluster (each coordinator with the extra flags), the
// scripted agent node and the catalogue.
func newRig(t testing.TB, extra ...string) *rig {
	return newRigFlags(t, func(int) []string { return extra })
}

// newRigFlags is newRig with flags per coordinator (i is its index) and
// extra arguments of the scripted node (simArgs).
func newRigFlags(t testing.TB, extra func(i int) []string, simArgs ...string) *rig {
	c := framework.NewProcessCluster(t, framework.ProcessOptions{N: 3, Bin: framework.Coordinator(t),
		RaftTimeout: framework.RaftTimeout, Agents: true, AgentPing: 200 * time.Millisecond, AgentGrace: 2 * time.Second,
		Webhooks: true, Extra: func(i int, _ *framework.CoordinatorProcess) []string { return extra(i) }})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	acc, key, err := c.NewAccount(ctx, "orders@example.com", api.ScopeAccountRead, api.ScopeOrdersWrite, api.ScopeServersRead, api.ScopeBillingRead, api.ScopeTicketsWrite, api.ScopeHostingRead, api.ScopeHostingWrite, api.ScopeServersWrite, api.ScopeServersDestroy, api.ScopeHostingDestroy, api.ScopeWebhooksWrite, api.ScopeWebhooksRead)
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, c: c, ctx: ctx, key: key, acc: acc.ID}
	r.sim = c.StartTestAgent("orders-node-1", strings.Join(c.AgentAddrs(), ","), append([]string{"-kvm", "-hosting"}, simArgs...)...)
	adm := c.AnyAlive(nil).Admin()
	spec := api.ProductSpecs{VCPU: 1, RAMMB: 256, DiskGB: 1}
	if _, err := adm.CreateProduct(ctx, "vps-t", api.ProductRequest{Category: api.ProductVPS, NameEn: "VPS T", RetailMonthlyUsdCents: 1200, Specs: spec}); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.CreateProduct(ctx, "old-t", api.ProductRequest{Category: api.ProductVPS, NameEn: "Old", RetailMonthlyUsdCents: 100, Specs: spec}); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.RetireProduct(ctx, "old-t"); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.SetAccountPricing(ctx, acc.ID, api.AccountPricing{DiscountPercent: 25}); err != nil {
		t.Fatal(err)
	}
	return r
}

// hooks subscribes a new loopback receiver to the account's events; it
// returns the receiver and the subscription's id.
func (r *rig) hooks(events ...api.WebhookEvent) (*framework.WebhookReceiver, string) {
	r.t.Helper()
	rc := framework.NewWebhookReceiver(r.t)
	names := make([]string, len(events))
	for i, e := range events {
		names[i] = string(e)
	}
	w, err := r.api(0).CreateWebhook(r.ctx, api.WebhookCreateRequest{URL: rc.URL + "/hook", Events: names}, "")
	if err != nil {
		r.t.Fatal(err)
	}
	return rc, w.ID
}

func (r *rig) credit(cents int64) { r.t.Helper(); r.c.Credit(r.ctx, r.acc, cents) }

func (r *rig) balance() int64 { r.t.Helper(); return r.balanceAt(r.api(0)) }

func (r *rig) servers() []api.Server { r.t.Helper(); return r.serversAt(r.api(1)) }

// balanceAt and serversAt read the wallet's balance and the first 100
// servers through c.
func (r *rig) balanceAt(c *client.Client) int64 {
	r.t.Helper()
	w, err := c.Wallet(r.ctx)
	if err != nil {
		r.t.Fatal(err)
	}
	return w.BalanceUsdCents
}

func (r *rig) serversAt(c *client.Client) []api.Server {
	r.t.Helper()
	l, err := c.Servers(r.ctx, 1, 100)
	if err != nil {
		r.t.Fatal(err)
	}
	return l.Data
}

// firstPage is the first 100 items list (a client's Invoices,
// WalletTransactions, Hosting) answers.
func firstPage[T any](r *rig, list func(ctx context.Context, page, limit int) (api.Page[T], error)) []T {
	r.t.Helper()
	l, err := list(r.ctx, 1, 100)
	if err != nil {
		r.t.Fatal(err)
	}
	return l.Data
}

// perInvoice counts the transactions of type typ of each invoice.
func perInvoice(txs []api.WalletTransaction, typ string) map[string]int {
	n := map[string]int{}
	for _, tx := range txs {
		if tx.Type == typ {
			n[tx.InvoiceID]++
		}
	}
	return n
}

// newKey is a fresh Idempotency-Key for one write of what: a customer gives
// each write it means to make once a key of its own, so that pkg/client may
// send it again after a 503 no_leader or leader_unreachable (an election, as
// on a loaded machine), as the README's retry policy says.
func newKey(what string) string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return what + "-" + hex.EncodeToString(b)
}

// resent makes one write of what as a customer does across a leader
// change: send gets a fresh Idempotency-Key (newKey), and after a 503
// node_reconnecting (the node's agent finding the new leader: a refusal that
// charged nothing, "retry", README) the write is sent again a second later
// under a new key, while r.ctx lasts. Any other answer is returned.
func resent[T any](r *rig, what string, send func(key string) (T, error)) (T, error) {
	r.t.Helper()
	for {
		out, err := send(newKey(what))
		var ae *api.Error
		if !errors.As(err, &ae) || ae.StatusCode != http.StatusServiceUnavailable || ae.Code != "node_reconnecting" {
			return out, err
		}
		r.t.Logf("%s: %v: sent again in 1 s", what, err)
		select {
		case <-r.ctx.Done():
			return out, err
		case <-time.After(time.Second):
		}
	}
}

func order(n int) api.ServerOrderRequest {
	return api.ServerOrderRequest{PlanSlug: "vps-t", Label: fmt.Sprintf("web-%d", n), Hostname: fmt.Sprintf("web-%d", n), OSTemplate: "base"}
}

// orderBurst sends n server orders at once, order i (req(i)) to coordinator
// i%3 with the Idempotency-Key idemKey, or with "" as a customer orders
// across a leader change (resent: a key of its own, sent again after 503
// node_reconnecting), and hands each answer to check (one at a time) with
// its status and error message (status) and whether it replays an earlier
// answer to its key (Idempotent-Replayed: pkg/client's resend after a 503
// whose first send was applied; such an answer carries no password); it
// returns how many answers had each status.
func (r *rig) orderBurst(n int, req func(i int) api.ServerOrderRequest, idemKey string, check func(i int, o api.ServerOrder, st int, msg string, replayed bool)) map[int]int {
	return r.orderBurstVia(r.api, n, req, idemKey, check)
}

// orderBurstVia is orderBurst with order i sent through via(i).
func (r *rig) orderBurstVia(via func(i int) *client.Client, n int, req func(i int) api.ServerOrderRequest, idemKey string, check func(i int, o api.ServerOrder, st int, msg string, replayed bool)) map[int]int {
	var mu sync.Mutex
	var wg sync.WaitGroup
	codes := map[int]int{}
	for i := 0; i < n; i++ {
		wg.Go(func() {
			type answer struct {
				o        api.ServerOrder
				replayed bool
			}
			send := func(key string) (answer, error) {
				var a answer
				resp, err := via(i).Do(r.ctx, http.MethodPost, "/v1/servers", req(i), &a.o, http.Header{"Idempotency-Key": {key}})
				a.replayed = resp != nil && resp.Header.Get("Idempotent-Replayed") == "true"
				return a, err
			}
			var a answer
			var err error
			if idemKey != "" {
				a, err = send(idemKey)
			} else {
				a, err = resent(r, fmt.Sprint("burst-", i), send)
			}
			st, msg := status(err)
			mu.Lock()
			defer mu.Unlock()
			codes[st]++
			check(i, a.o, st, msg, a.replayed)
		})
	}
	wg.Wait()
	return codes
}

// badInput is a request the API must refuse with a 400 naming field.
type badInput[R any] struct {
	req   R
	field string
}

// wantRefusedNaming sends each bad input's request and requires a 400 whose
// message names its field.
func wantRefusedNaming[R any](t *testing.T, send func(R) error, bad []badInput[R]) {
	t.Helper()
	for _, tc := range bad {
		if st, msg := status(send(tc.req)); st != http.StatusBadRequest || !strings.Contains(msg, `"`+tc.field+`"`) {
			t.Errorf("%+v: %d %s, want 400 naming %q", tc.req, st, msg, tc.field)
		}
	}
}

func status(err error) (int, string) {
	var ae *api.Error
	if err == nil {
		return 201, ""
	}
	if errors.As(err, &ae) {
		return ae.StatusCode, ae.Message
	}
	return -1, err.Error()
}

func TestServerOrders(t *testing.T) {
	r := newRig(t)

	// The catalogue shows the retail and the account's own price, not the retired product.
	prods, err := r.api(2).Products(r.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(prods.Data) != 1 || prods.Data[0].Slug != "vps-t" || prods.Data[0].RetailMonthlyUsdCents != 1200 || prods.Data[0].YourMonthlyUsdCents != price {
		t.Fatalf("products %+v", prods.Data)
	}
	// The templates that can be ordered: the one the node reported (asked of
	// a follower; the leader holds the nodes' reports).
	tpls, err := r.api(r.c.WaitLeader(20*time.Second) + 1).OSTemplates(r.ctx)
	if err != nil || len(tpls.Data) != 1 || tpls.Data[0] != (api.OSTemplate{Name: "base", Family: "base"}) {
		t.Fatalf("os templates %+v %v", tpls.Data, err)
	}

	// Bad input is refused naming the field, and changes nothing.
	r.credit(price)
	wantRefusedNaming(t, func(req api.ServerOrderRequest) error { _, err := r.api(0).OrderServer(r.ctx, req, ""); return err }, []badInput[api.ServerOrderRequest]{
		{api.ServerOrderRequest{Hostname: "a", OSTemplate: "base"}, "plan_slug"},
		{api.ServerOrderRequest{PlanSlug: "vps-9", Hostname: "a", OSTemplate: "base"}, "plan_slug"},
		{api.ServerOrderRequest{PlanSlug: "old-t", Hostname: "a", OSTemplate: "base"}, "plan_slug"},
		{api.ServerOrderRequest{PlanSlug: "vps-t", OSTemplate: "base"}, "hostname"},
		{api.ServerOrderRequest{PlanSlug: "vps-t", Hostname: "Not A Host", OSTemplate: "base"}, "hostname"},
		{api.ServerOrderRequest{PlanSlug: "vps-t", Hostname: "a"}, "os_template"},
		{api.ServerOrderRequest{PlanSlug: "vps-t", Hostname: "a", OSTemplate: "windows-11"}, "os_template"},
		{api.ServerOrderRequest{PlanSlug: "vps-t", Hostname: "a", OSTemplate: "base", SSHKeys: []string{"a\nb"}}, "ssh_keys[0]"},
	})
	if b, n := r.balance(), len(r.servers()); b != price || n != 0 {
		t.Fatalf("after refused orders: balance %d, %d servers", b, n)
	}
	// The quote prices the same body without ordering.
	if q, err := r.api(1).QuoteServer(r.ctx, order(0)); err != nil || q.YourMonthlyUsdCents != price || q.RetailMonthlyUsdCents != 1200 || q.BalanceUsdCents != price || q.ShortfallUsdCents != 0 {
		t.Fatalf("quote %+v %v", q, err)
	}
	if _, err := r.api(1).QuoteServer(r.ctx, api.ServerOrderRequest{PlanSlug: "old-t", Hostname: "a", OSTemplate: "base"}); err == nil {
		t.Fatal("a retired plan was quoted")
	}

	// 200 concurrent orders (spread over the three coordinators) against a
	// wallet that pays exactly 10: 10 servers, 10 paid invoices, balance 0.
	r.credit(9 * price)
	passwords := map[string]bool{}
	// Each order has a key of its own (orderBurst), so one answered 503 by
	// an election is sent again; a replayed answer has no password (README).
	codes := r.orderBurst(200, order, "", func(i int, o api.ServerOrder, st int, msg string, replayed bool) {
		switch st {
		case 201:
			if (o.RootPassword == "") != replayed || o.RootPassword != "" && passwords[o.RootPassword] || o.Invoice.TotalUsdCents != price || o.Invoice.Status != api.InvoicePaid || o.Server.PaidUntil == nil {
				t.Errorf("order %d (replayed %v): %+v", i, replayed, o)
			}
			passwords[o.RootPassword] = true
		case http.StatusPaymentRequired:
			if !strings.Contains(msg, "shortfall") {
				t.Errorf("402 without the shortfall: %s", msg)
			}
		default:
			t.Errorf("order %d: %d %s", i, st, msg)
		}
	})
	if codes[201] != 10 || codes[402] != 190 {
		t.Fatalf("status counts %v, want 10×201 and 190×402", codes)
	}
	if b := r.balance(); b != 0 {
		t.Fatalf("balance %d after 10 orders, want 0", b)
	}
	if q, err := r.api(2).QuoteServer(r.ctx, order(0)); err != nil || q.ShortfallUsdCents != price {
		t.Fatalf("quote with an empty wallet %+v %v", q, err)
	}
	if n := len(r.servers()); n != 10 {
		t.Fatalf("%d servers, want 10", n)
	}
	invs, err := r.api(2).Invoices(r.ctx, 1, 100)
	if err != nil {
		t.Fatal(err)
	}
	numbers := map[string]bool{}
	for _, inv := range invs.Data {
		if inv.Status != api.InvoicePaid || inv.TotalUsdCents != price || !strings.HasPrefix(inv.Number, fmt.Sprintf("INV-%d-", time.Now().UTC().Year())) {
			t.Errorf("invoice %+v", inv)
		}
		numbers[inv.Number] = true
	}
	if invs.Total != 10 || len(numbers) != 10 {
		t.Fatalf("%d invoices with %d numbers, want 10", invs.Total, len(numbers))
	}
	for i := 1; i <= 10; i++ { // gap-free: the cluster's first ten numbers
		if n := fmt.Sprintf("INV-%d-%06d", time.Now().UTC().Year(), i); !numbers[n] {
			t.Errorf("invoice number %s missing from %v", n, numbers)
		}
	}

	// One Idempotency-Key sent 20 times at once orders once.
	r.credit(price)
	ids := map[string]int{}
	codes = r.orderBurst(20, func(int) api.ServerOrderRequest { return order(1000) }, "order-once", func(_ int, o api.ServerOrder, st int, msg string, _ bool) {
		switch st {
		case 201:
			ids[o.Server.ID]++
		case http.StatusConflict:
			if !strings.Contains(msg, "Idempotency-Key") {
				t.Errorf("409: %s", msg)
			}
		default:
			t.Errorf("idempotent order: %d %s", st, msg)
		}
	})
	if len(ids) != 1 {
		t.Fatalf("one key ordered servers %v (statuses %v)", ids, codes)
	}
	again, err := r.api(0).OrderServer(r.ctx, order(1000), "order-once")
	if err != nil || ids[again.Server.ID] == 0 || again.RootPassword != "" {
		t.Fatalf("retry after the burst: %+v %v (want the same server, no password)", again, err)
	}
	if b, n := r.balance(), len(r.servers()); b != 0 || n != 11 {
		t.Fatalf("after the idempotent burst: balance %d, %d servers", b, n)
	}

	// The provisioning action was opened: the node provisions the server.
	deadline := time.Now().Add(30 * time.Second)
	for {
		a, err := r.api(0).Action(r.ctx, again.Action.ID)
		if err == nil && a.Status == api.ActionSuccess {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("provisioning action %s: %+v %v", again.Action.ID, a, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
