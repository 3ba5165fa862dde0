package clustertest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/server"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/coordinator/internal/testcluster"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
	bolt "go.etcd.io/bbolt"
)

// fixture is a single-node coordinator with account A (a ticket and an invoice)
// and account B.
type fixture struct {
	c        *testcluster.Cluster
	cl       *framework.API
	accA     api.Account
	keyA     string
	accB     api.Account
	keyB     string
	ticketA  string
	invoiceA string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	c := testcluster.New(t, 1)
	f := &fixture{c: c, cl: newAPIClient(t, c.URL(0))}
	f.accA, f.keyA = c.NewAccount("a@example.com", api.AllScopes...)
	f.accB, f.keyB = c.NewAccount("b@example.com", api.AllScopes...)
	ctx := context.Background()
	cctx, r := framework.Capture(ctx)
	tk, err := f.cl.Client(f.keyA).CreateTicket(cctx, api.TicketCreateRequest{Subject: "A's ticket", Message: "hello"}, "")
	if err != nil || r.Status != 201 {
		t.Fatalf("create ticket: %d %s (%v)", r.Status, r.Body, err)
	}
	f.ticketA = tk.ID
	if _, err := c.Admin(0).CreditWallet(ctx, f.accA.ID, api.WalletCreditRequest{AmountUsdCents: 5000, Gateway: "card"}); err != nil {
		t.Fatal(err)
	}
	inv, err := c.Admin(0).IssueInvoice(ctx, f.accA.ID, api.InvoiceIssueRequest{Lines: []api.InvoiceLineRequest{{Description: "VPS", Quantity: 1, UnitPriceUsdCents: 1200}}, PayFromWallet: true})
	if err != nil {
		t.Fatal(err)
	}
	f.invoiceA = inv.ID
	return f
}

func (f *fixture) key(t *testing.T, acc api.Account, req api.KeyCreateRequest) string {
	t.Helper()
	k, err := f.c.Admin(0).CreateKey(context.Background(), acc.ID, req)
	if err != nil {
		t.Fatal(err)
	}
	return k.Key
}

// concrete fills a route's path parameters with account A's resources and
// returns a valid body for it.
func (f *fixture) concrete(rt string) (string, any) {
	p := strings.ReplaceAll(rt, "{id}", f.ticketA)
	if strings.Contains(rt, "/invoices/") {
		p = strings.ReplaceAll(rt, "{id}", f.invoiceA)
	}
	// Parameters of resources this fixture does not create get a well-formed id
	// that matches nothing.
	for strings.Contains(p, "{") {
		i, j := strings.Index(p, "{"), strings.Index(p, "}")
		p = p[:i] + "zz_00000000000000000000000000" + p[j+1:]
	}
	switch {
	case strings.HasSuffix(rt, "/reply"):
		return p, api.TicketReplyRequest{Body: "more info"}
	case rt == "/v1/tickets":
		return p, api.TicketCreateRequest{Subject: "s", Message: "m"}
	}
	return p, nil
}

// TestScopeMatrix: every route × every scope — only the route's documented scope
// (or its AltScope: GET /v1/actions/{id} with hosting:read) passes, everything
// else is a 403 naming the scope.
func TestScopeMatrix(t *testing.T) {
	f := newFixture(t)
	keys := map[string]string{}
	for _, s := range api.AllScopes {
		keys[s] = f.key(t, f.accA, api.KeyCreateRequest{Name: "only " + s, Scopes: []string{s}})
	}
	routes := f.c.Nodes[0].Server.API.Routes()
	if len(routes) < 10 {
		t.Fatalf("only %d routes", len(routes))
	}
	for _, rt := range routes {
		path, body := f.concrete(rt.Path)
		for _, s := range api.AllScopes {
			r := f.cl.Call(keys[s], rt.Method, path, body, nil)
			if rt.Public {
				// Served without a key: any key (ignored) is as good as none.
				if r.Status != 200 {
					t.Errorf("%s %s (public) with scope %s: %d %s", rt.Method, rt.Path, s, r.Status, r.Body)
				}
				continue
			}
			if s == rt.Scope || s == rt.AltScope {
				if r.Status == 401 || r.Status == 403 || r.Status >= 500 {
					t.Errorf("%s %s with its scope %s: %d %s", rt.Method, rt.Path, s, r.Status, r.Body)
				}
			} else if r.Status != 403 || r.Code() != "missing_scope" || !strings.Contains(string(r.Body), rt.Scope) {
				t.Errorf("%s %s with scope %s: %d %s, want 403 missing_scope naming %s", rt.Method, rt.Path, s, r.Status, r.Body, rt.Scope)
			}
		}
	}
}

// TestOtherAccountsResourcesAre404 uses B's all-scope key on each of A's resources.
func TestOtherAccountsResourcesAre404(t *testing.T) {
	f := newFixture(t)
	for _, rt := range f.c.Nodes[0].Server.API.Routes() {
		path, body := f.concrete(rt.Path)
		r := f.cl.Call(f.keyB, rt.Method, path, body, nil)
		if strings.Contains(rt.Path, "{") {
			if r.Status != 404 {
				t.Errorf("B on A's %s %s: %d %s, want 404", rt.Method, path, r.Status, r.Body)
			}
			continue
		}
		if strings.Contains(string(r.Body), f.ticketA) || strings.Contains(string(r.Body), f.invoiceA) || strings.Contains(string(r.Body), f.accA.ID) {
			t.Errorf("B's %s %s leaks A's data: %s", rt.Method, path, r.Body)
		}
	}
	// Nothing B did touched A's ticket.
	tk, err := f.cl.Client(f.keyA).Ticket(context.Background(), f.ticketA)
	if err != nil {
		t.Fatal(err)
	}
	if len(tk.Messages) != 1 || tk.Status != api.TicketOpen {
		t.Fatalf("A's ticket changed by B: %+v", tk)
	}
}

func TestKeyStatesAndAllowlist(t *testing.T) {
	f := newFixture(t)
	cases := []struct {
		name   string
		key    string
		status int
		code   string
	}{
		{"missing key", "", 401, "missing_api_key"},
		{"garbage key", "snc_not-a-key", 401, "invalid_api_key"},
		{"unknown key", "snc_" + strings.Repeat("A", 43), 401, "invalid_api_key"},
		{"foreign ip", f.key(t, f.accA, api.KeyCreateRequest{AllowedCIDRs: []string{"10.0.0.0/8"}}), 403, "ip_not_allowed"},
		{"allowed ip", f.key(t, f.accA, api.KeyCreateRequest{AllowedCIDRs: []string{"127.0.0.0/8", "::1"}}), 200, ""},
	}
	exp := time.Now().Add(1500 * time.Millisecond)
	expiring := f.key(t, f.accA, api.KeyCreateRequest{ExpiresAt: &exp})
	if _, err := f.cl.Client(expiring).Account(context.Background()); err != nil {
		t.Fatalf("key before expiry: %v", err)
	}
	revoked := f.key(t, f.accA, api.KeyCreateRequest{})
	info, _ := f.c.Admin(0).Keys(context.Background(), f.accA.ID)
	for _, k := range info {
		if strings.HasPrefix(revoked, k.Prefix) {
			if _, err := f.c.Admin(0).RevokeKey(context.Background(), k.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	time.Sleep(time.Until(exp) + 100*time.Millisecond)
	cases = append(cases, struct {
		name   string
		key    string
		status int
		code   string
	}{"expired", expiring, 401, "expired_api_key"}, struct {
		name   string
		key    string
		status int
		code   string
	}{"revoked", revoked, 401, "revoked_api_key"})
	for _, tc := range cases {
		r := f.cl.Call(tc.key, "GET", "/v1/account", nil, nil)
		if r.Status != tc.status || r.Code() != tc.code {
			t.Errorf("%s: %d %s, want %d %s", tc.name, r.Status, r.Body, tc.status, tc.code)
		}
	}
	// X-API-Key works like Bearer.
	if r := f.cl.Call("", "GET", "/v1/account", nil, map[string]string{"X-API-Key": f.keyA}); r.Status != 200 {
		t.Fatalf("X-API-Key: %d %s", r.Status, r.Body)
	}
}

func TestRateLimit(t *testing.T) {
	f := newFixture(t)
	key := f.key(t, f.accA, api.KeyCreateRequest{RateLimitPerMin: 5})
	for i := 0; i < 5; i++ {
		r := f.cl.Call(key, "GET", "/v1/account", nil, nil)
		if r.Status != 200 || r.Header.Get("X-RateLimit-Limit") != "5" || r.Header.Get("X-RateLimit-Remaining") != strconv.Itoa(4-i) {
			t.Fatalf("request %d: %d limit=%q remaining=%q", i, r.Status, r.Header.Get("X-RateLimit-Limit"), r.Header.Get("X-RateLimit-Remaining"))
		}
		reset, _ := strconv.ParseInt(r.Header.Get("X-RateLimit-Reset"), 10, 64)
		if d := time.Until(time.Unix(reset, 0)); d <= 0 || d > 61*time.Second {
			t.Fatalf("X-RateLimit-Reset %d is %s away", reset, d)
		}
	}
	r := f.cl.Call(key, "GET", "/v1/account", nil, nil)
	retry, _ := strconv.Atoi(r.Header.Get("Retry-After"))
	if r.Status != 429 || r.Code() != "rate_limited" || retry < 1 || retry > 60 || r.Header.Get("X-RateLimit-Remaining") != "0" {
		t.Fatalf("6th request: %d %s Retry-After=%q", r.Status, r.Body, r.Header.Get("Retry-After"))
	}
	// Another key of the same account has its own budget.
	if _, err := f.cl.Client(f.keyA).Account(context.Background()); err != nil {
		t.Fatalf("other key limited too: %v", err)
	}
}

func ticketCount(t *testing.T, f *fixture, key string) int {
	t.Helper()
	p, err := f.cl.Client(key).Tickets(context.Background(), 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	return p.Total
}

func TestIdempotency(t *testing.T) {
	f := newFixture(t)
	before := ticketCount(t, f, f.keyA)
	body := api.TicketCreateRequest{Subject: "idem", Message: "once"}
	h := map[string]string{"Idempotency-Key": "order-42"}
	first := f.cl.Call(f.keyA, "POST", "/v1/tickets", body, h)
	second := f.cl.Call(f.keyA, "POST", "/v1/tickets", body, h)
	if first.Status != 201 || second.Status != 201 || string(first.Body) != string(second.Body) || second.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay: %d %s / %d %s", first.Status, first.Body, second.Status, second.Body)
	}
	other := f.cl.Call(f.keyA, "POST", "/v1/tickets", api.TicketCreateRequest{Subject: "idem", Message: "twice"}, h)
	if other.Status != 422 || other.Code() != "idempotency_key_reused" {
		t.Fatalf("mismatch: %d %s", other.Status, other.Body)
	}
	if n := ticketCount(t, f, f.keyA); n != before+1 {
		t.Fatalf("tickets %d, want %d", n, before+1)
	}
	// The same Idempotency-Key from another API key is a different request.
	keyA2 := f.key(t, f.accA, api.KeyCreateRequest{})
	if r := f.cl.Call(keyA2, "POST", "/v1/tickets", body, h); r.Status != 201 || r.Header.Get("Idempotent-Replayed") == "true" {
		t.Fatalf("other key: %d %s", r.Status, r.Body)
	}

	// Concurrent identical requests: every answer is the one ticket, or a 409 while
	// it is in flight; exactly one ticket is created.
	before = ticketCount(t, f, f.keyA)
	var wg sync.WaitGroup
	var mu sync.Mutex
	ids := map[string]int{}
	statuses := map[int]int{}
	for i := 0; i < 12; i++ {
		wg.Go(func() {
			r := f.cl.Call(f.keyA, "POST", "/v1/tickets", api.TicketCreateRequest{Subject: "race", Message: "m"}, map[string]string{"Idempotency-Key": "race-1"})
			mu.Lock()
			defer mu.Unlock()
			statuses[r.Status]++
			if r.Status == 201 {
				var tk api.Ticket
				_ = json.Unmarshal(r.Body, &tk)
				ids[tk.ID]++
			} else if r.Status != 409 || r.Code() != "idempotency_key_in_flight" {
				t.Errorf("concurrent: %d %s", r.Status, r.Body)
			}
		})
	}
	wg.Wait()
	if len(ids) != 1 {
		t.Fatalf("concurrent requests created %d tickets: %v (statuses %v)", len(ids), ids, statuses)
	}
	if n := ticketCount(t, f, f.keyA); n != before+1 {
		t.Fatalf("tickets %d after concurrent requests, want %d", n, before+1)
	}
	t.Logf("concurrent statuses: %v", statuses)
}

func TestBadBodies(t *testing.T) {
	f := newFixture(t)
	before := ticketCount(t, f, f.keyA)
	big := `{"subject":"s","message":"` + strings.Repeat("x", 1<<20) + `"}`
	cases := []struct {
		body   string
		status int
		want   string
	}{
		{big, 413, "larger than"},
		{`{"subject":"s","message":`, 400, "malformed JSON"},
		{`not json`, 400, "malformed JSON"},
		{`{"subject":"s","message":"m","admin":true}`, 400, `unknown field \"admin\"`},
		{`{"subject":["s"],"message":"m"}`, 400, `field \"subject\" must be a string`},
		{`{"subject":"s","message":"m","priority":"asap"}`, 400, `field \"priority\" must be one of`},
		{`{"subject":"","message":"m"}`, 400, `field \"subject\" is required`},
		{``, 400, "request body is required"},
	}
	for _, tc := range cases {
		r := f.cl.Call(f.keyA, "POST", "/v1/tickets", tc.body, nil)
		if r.Status != tc.status || !strings.Contains(string(r.Body), tc.want) {
			t.Errorf("body %.40q: %d %s, want %d containing %s", tc.body, r.Status, r.Body, tc.status, tc.want)
		}
	}
	for _, q := range []string{"limit=0", "limit=201", "limit=x", "page=0", "page=-1"} {
		if r := f.cl.Call(f.keyA, "GET", "/v1/tickets?"+q, nil, nil); r.Status != 400 {
			t.Errorf("?%s: %d, want 400", q, r.Status)
		}
	}
	if n := ticketCount(t, f, f.keyA); n != before {
		t.Fatalf("bad bodies created tickets: %d → %d", before, n)
	}
	if r := f.cl.Call(f.keyA, "GET", "/v1/nope", nil, nil); r.Status != 404 || r.Code() != "route_not_found" {
		t.Fatalf("unknown route: %d %s", r.Status, r.Body)
	}
}

// TestTourAndEvents walks the customer-visible flow and checks the outbox holds
// each event with the payload fields the seeds list.
func TestTourAndEvents(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	cl := f.cl.Client(f.keyA)
	acc, err := cl.Account(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if acc.ID != f.accA.ID || acc.Email != "a@example.com" || acc.BalanceUsdCents != 5000-1200 {
		t.Fatalf("account: %+v", acc)
	}
	w, err := cl.Wallet(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if w.BalanceUsdCents != 3800 || w.Currency != "USD" {
		t.Fatalf("wallet: %+v", w)
	}
	txs, err := cl.WalletTransactions(ctx, 1, 20)
	if err != nil {
		t.Fatal(err)
	}
	if txs.Total != 2 || txs.Data[0].AmountUsdCents != -1200 || txs.Data[1].AmountUsdCents != 5000 {
		t.Fatalf("transactions: %+v", txs)
	}
	inv, err := cl.Invoice(ctx, f.invoiceA)
	if err != nil {
		t.Fatal(err)
	}
	if inv.Status != api.InvoicePaid || inv.TotalUsdCents != 1200 || len(inv.Payments) != 1 || inv.PaidAt == nil {
		t.Fatalf("invoice: %+v", inv)
	}
	// Customer reply, staff reply, close, re-open by reply.
	rctx, reply := framework.Capture(ctx)
	if _, err := cl.ReplyTicket(rctx, f.ticketA, api.TicketReplyRequest{Body: "any news?"}, ""); err != nil || reply.Status != 201 {
		t.Fatalf("reply: %d %s (%v)", reply.Status, reply.Body, err)
	}
	if _, err := f.c.Admin(0).StaffReply(ctx, f.ticketA, api.StaffReplyRequest{Body: "fixed", StaffName: "Ayşe"}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ { // close is idempotent
		cctx, r := framework.Capture(ctx)
		tk, err := cl.CloseTicket(cctx, f.ticketA)
		if err != nil || r.Status != 200 || tk.Status != api.TicketClosed {
			t.Fatalf("close #%d: %d %s (%v)", i, r.Status, r.Body, err)
		}
	}
	tk, err := cl.ReplyTicket(ctx, f.ticketA, api.TicketReplyRequest{Body: "again"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if tk.Status != api.TicketCustomerReply || len(tk.Messages) != 4 || tk.Messages[2].Author != "staff" || tk.Messages[2].StaffName != "Ayşe" {
		t.Fatalf("thread: %+v", tk)
	}

	want := map[string][]string{
		"ticket.created":          {"ticketId", "ticketNumber", "subject", "status", "priority"},
		"ticket.replied":          {"ticketId", "ticketNumber", "subject", "status"},
		"wallet.deposit.received": {"amountUsdCents", "gateway", "transactionId"},
		"invoice.created":         {"invoiceId", "invoiceNumber", "status", "totalUsdCents", "currency"},
		"invoice.paid":            {"invoiceId", "invoiceNumber", "totalUsdCents", "currency"},
	}
	got := map[string]int{}
	_ = f.c.Nodes[0].Server.Node.FSM.View(func(tx *bolt.Tx) error {
		return tx.Bucket(store.BucketOutbox).ForEach(func(k, v []byte) error {
			var ev store.Event
			if err := json.Unmarshal(v, &ev); err != nil {
				t.Errorf("outbox entry: %v", err)
				return nil
			}
			if ev.AccountID != f.accA.ID {
				return nil
			}
			got[ev.Type]++
			var data map[string]any
			_ = json.Unmarshal(ev.Data, &data)
			for _, field := range want[ev.Type] {
				if _, ok := data[field]; !ok {
					t.Errorf("%s event lacks %q: %s", ev.Type, field, ev.Data)
				}
			}
			if !strings.HasPrefix(ev.ID, "evt_") || ev.CreatedAt.IsZero() {
				t.Errorf("event id/time: %+v", ev)
			}
			return nil
		})
	})
	for typ := range want {
		if got[typ] != 1 {
			t.Errorf("%d %s events, want 1 (all: %v)", got[typ], typ, got)
		}
	}
}

func TestUsageLogIsBatched(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	k, err := f.c.Admin(0).CreateKey(ctx, f.accA.ID, api.KeyCreateRequest{Name: "usage"})
	if err != nil {
		t.Fatal(err)
	}
	idx := f.c.Nodes[0].Server.Node.Raft.LastIndex()
	start := time.Now()
	var wg sync.WaitGroup
	for range 30 {
		wg.Go(func() { _, _ = f.cl.Client(k.Key).Account(ctx) })
	}
	wg.Wait()
	sent := time.Since(start)
	deadline := time.Now().Add(5 * time.Second)
	var u []api.KeyUsage
	for time.Now().Before(deadline) {
		if u, err = f.c.Admin(0).KeyUsage(ctx, k.Info.ID); err == nil && len(u) == 30 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(u) != 30 || u[0].Path != "/v1/account" || u[0].Status != 200 || u[0].IP != "127.0.0.1" {
		t.Fatalf("usage log: %d entries %+v", len(u), u)
	}
	// 30 requests cost far fewer than 30 Raft entries: at most 10, or, when a
	// loaded machine answered them over more flush intervals than that, one
	// per interval and the flushes around them; never one per request.
	flush := f.c.Nodes[0].Cfg.UsageFlush
	d := f.c.Nodes[0].Server.Node.Raft.LastIndex() - idx
	if allowed := max(10, uint64(sent/flush)+3); d > allowed || d >= 30 {
		t.Fatalf("usage recording took %d raft entries for 30 requests answered in %s (flush every %s: at most %d, and fewer than 30)", d, sent, flush, allowed)
	}
	keys, _ := f.c.Admin(0).Keys(ctx, f.accA.ID)
	for _, ki := range keys {
		if ki.ID == k.Info.ID && (ki.LastUsedAt == nil || ki.UseCount != 30) {
			t.Fatalf("last used/use count not recorded: %+v", ki)
		}
	}
}

func TestHealthReadyMetrics(t *testing.T) {
	f := newFixture(t)
	for _, p := range []string{"/healthz", "/readyz"} {
		if r := f.cl.Call("", "GET", p, nil, nil); r.Status != 200 {
			t.Fatalf("%s: %d %s", p, r.Status, r.Body)
		}
	}
	_, _ = f.cl.Client(f.keyA).Account(context.Background())
	// /metrics is not on the public listener but on its own (--metrics-addr).
	if r := f.cl.Call("", "GET", "/metrics", nil, nil); r.Status != 404 {
		t.Fatalf("public /metrics: %d", r.Status)
	}
	mr, err := http.Get(f.c.MetricsURL(0) + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(mr.Body)
	mr.Body.Close()
	r := framework.Reply{Status: mr.StatusCode, Body: raw}
	for _, want := range []string{
		`hostplane_http_requests_total{method="GET",route="GET /v1/account",status="200"}`,
		"hostplane_http_request_duration_seconds_bucket", "hostplane_raft_apply_duration_seconds_count", "hostplane_fsm_size_bytes",
		"\nhostplane_raft_leader 1\n", "\nhostplane_raft_term ",
	} {
		if !strings.Contains(string(r.Body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	var doc map[string]any
	f.cl.Call("", "GET", "/openapi.json", nil, nil).Decode(t, &doc)
	if doc["openapi"] != "3.0.3" {
		t.Fatalf("/openapi.json: %v", doc["openapi"])
	}
	_ = fmt.Sprint()
	_ = http.StatusOK
}

// TestIdempotencyKeysExpireThroughLeaderSweep: with a short TTL the leader's
// sweep removes the record through Raft, after which the same key with another
// body is a new request (201) instead of a 422.
func TestIdempotencyKeysExpireThroughLeaderSweep(t *testing.T) {
	c := testcluster.New(t, 1, func(_ int, cfg *server.Config) {
		cfg.IdempotencyTTL, cfg.IdempotencySweep = time.Second, 200*time.Millisecond
	})
	cl := newAPIClient(t, c.URL(0))
	_, key := c.NewAccount("ttl@example.com")
	// create opens a ticket under one Idempotency-Key and returns the raw answer.
	create := func(subject string) (framework.Reply, error) {
		ctx, r := framework.Capture(t.Context())
		_, err := cl.Client(key).CreateTicket(ctx, api.TicketCreateRequest{Subject: subject, Message: "m"}, "short-lived")
		return *r, err
	}
	if r, err := create("one"); err != nil || r.Status != 201 {
		t.Fatalf("first: %d %s (%v)", r.Status, r.Body, err)
	}
	if r, err := create("two"); r.Status != 422 {
		t.Fatalf("within the TTL: %d %s (%v)", r.Status, r.Body, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := 0
		_ = c.Nodes[0].Server.Node.FSM.View(func(tx *bolt.Tx) error {
			n = tx.Bucket(store.BucketIdempotency).Stats().KeyN
			return nil
		})
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d idempotency records left after the TTL", n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if r, err := create("two"); err != nil || r.Status != 201 || r.Header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("after expiry: %d %s (%v)", r.Status, r.Body, err)
	}
}
