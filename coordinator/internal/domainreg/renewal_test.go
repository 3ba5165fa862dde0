package domainreg_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/registrar"
	"github.com/hostplane/hostplane/coordinator/internal/server"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/coordinator/internal/testcluster"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
	bolt "go.etcd.io/bbolt"
)

// clock is a test's movable time.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time)     { c.mu.Lock(); c.t = t; c.mu.Unlock() }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// TestDomainRenewals: through a coordinator's own renewal job and registry
// driver (an in-memory registry, the clock moved): an auto-renewing domain is
// paid from the wallet 30 days before expiry and renewed at the registry
// once, however often the job sweeps; a domain with auto-renew off gets one
// domain.expiring at 30 and one at 7 days and is never charged; an
// auto-renewing domain the wallet cannot pay gets one domain.expiring saying
// so.
func TestDomainRenewals(t *testing.T) {
	clk := &clock{t: time.Date(2026, 6, 3, 10, 0, 0, 0, time.UTC)}
	reg := registrar.NewMemory(clk.Now, "test")
	c := testcluster.New(t, 1, func(_ int, cfg *server.Config) {
		cfg.Clock = clk.Now
		cfg.Renewals.Interval = 100 * time.Millisecond
		cfg.DomainReg.Registrar = reg
		cfg.DomainReg.RenewDays, cfg.DomainReg.ReminderDays = 30, "30,7"
	})
	ctx := context.Background()
	adm := c.Admin(0)
	if _, err := adm.CreateProduct(ctx, "domain-test", api.ProductRequest{Category: api.ProductDomain, Tld: "test", NameEn: ".test", RetailYearlyUsdCents: 1000}); err != nil {
		t.Fatal(err)
	}
	acc, key := c.NewAccount("renew@example.com", api.ScopeDomainsRead, api.ScopeDomainsWrite, api.ScopeOrdersWrite)
	if _, err := adm.CreditWallet(ctx, acc.ID, api.WalletCreditRequest{AmountUsdCents: 3000, Gateway: "test"}); err != nil {
		t.Fatal(err)
	}
	cl := c.Client(0, key)
	contact := api.DomainContact{Name: "Ada", Street: []string{"1 Road"}, City: "Istanbul", CC: "TR", Email: "ada@example.com"}
	off := false
	auto, err := cl.RegisterDomain(ctx, api.DomainOrderRequest{Name: "auto.test", Years: 1, Contact: contact}, "")
	if err != nil || auto.Status != api.DomainActive {
		t.Fatalf("register auto.test: %+v %v", auto, err)
	}
	manual, err := cl.RegisterDomain(ctx, api.DomainOrderRequest{Name: "manual.test", Years: 1, Contact: contact, AutoRenew: &off}, "")
	if err != nil || manual.Status != api.DomainActive {
		t.Fatalf("register manual.test: %+v %v", manual, err)
	}
	balance := func() int64 {
		a, err := adm.Account(ctx, acc.ID)
		if err != nil {
			t.Fatal(err)
		}
		return a.BalanceUsdCents
	}
	if b := balance(); b != 1000 {
		t.Fatalf("balance %d after two registrations", b)
	}
	events := func(typ string) []map[string]any {
		var out []map[string]any
		_ = c.Nodes[0].Server.Node.FSM.View(func(tx *bolt.Tx) error {
			return tx.Bucket(store.BucketOutbox).ForEach(func(_, v []byte) error {
				var e store.Event
				if json.Unmarshal(v, &e) == nil && e.Type == typ {
					var m map[string]any
					_ = json.Unmarshal(e.Data, &m)
					out = append(out, m)
				}
				return nil
			})
		})
		return out
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		framework.WaitFor(t, what, 15*time.Second, 50*time.Millisecond, ok)
	}
	exp := *auto.ExpiresAt

	// 40 days before: nothing.
	clk.Set(exp.AddDate(0, 0, -40))
	time.Sleep(500 * time.Millisecond)
	if b := balance(); b != 1000 || len(events("domain.expiring")) != 0 {
		t.Fatalf("40 days before expiry: balance %d, reminders %v", b, events("domain.expiring"))
	}
	// 29 days before: auto.test paid and renewed at the registry; one
	// reminder for manual.test.
	clk.Set(exp.AddDate(0, 0, -29))
	waitFor("auto.test renewed", func() bool {
		d, err := cl.Domain(ctx, auto.ID)
		return err == nil && d.ExpiresAt.After(exp)
	})
	info, err := reg.Info(ctx, "auto.test")
	if err != nil || !info.Expires.Equal(exp.AddDate(1, 0, 0)) {
		t.Fatalf("registry expiry %v (%v), want %v", info.Expires, err, exp.AddDate(1, 0, 0))
	}
	if d, _ := cl.Domain(ctx, auto.ID); !d.ExpiresAt.Equal(info.Expires) {
		t.Fatalf("our expiry %v, the registry's %v", d.ExpiresAt, info.Expires)
	}
	waitFor("the 30-day reminder", func() bool { return len(events("domain.expiring")) == 1 })
	applied := reg.Applied()
	// More sweeps at later times within the window change nothing.
	for range 5 {
		clk.Add(12 * time.Hour)
		time.Sleep(200 * time.Millisecond)
	}
	if b := balance(); b != 0 || reg.Applied() != applied || len(events("domain.renewed")) != 1 {
		t.Fatalf("after more sweeps: balance %d (want 0: one renewal), registry applied %d → %d, renewed events %d",
			b, applied, reg.Applied(), len(events("domain.renewed")))
	}
	r := events("domain.expiring")[0]
	if r["domainId"] != manual.ID || r["autoRenew"] != false || len(r) != 6 {
		t.Fatalf("reminder %v", r)
	}
	// 6 days before: the 7-day reminder, once.
	clk.Set(exp.AddDate(0, 0, -6))
	waitFor("the 7-day reminder", func() bool { return len(events("domain.expiring")) == 2 })
	// The next year: auto.test cannot be paid (balance 0): one reminder.
	clk.Set(exp.AddDate(1, 0, -20))
	waitFor("the unpayable reminder", func() bool { return len(events("domain.expiring")) == 3 })
	clk.Add(24 * time.Hour)
	time.Sleep(500 * time.Millisecond)
	ev := events("domain.expiring")
	if len(ev) != 3 || ev[2]["domainId"] != auto.ID || !strings.Contains(ev[2]["reason"].(string), "cannot pay") {
		t.Fatalf("reminders %v", ev)
	}
	if d, _ := cl.Domain(ctx, manual.ID); d.Status != api.DomainExpired {
		t.Fatalf("manual.test past expiry: %s", d.Status)
	}
}
