package renewal_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/server"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/coordinator/internal/testcluster"
	"github.com/hostplane/hostplane/internal/clock/clocktest"
	"github.com/hostplane/hostplane/pkg/api"
	bolt "go.etcd.io/bbolt"
)

type world struct {
	t   *testing.T
	c   *testcluster.Cluster
	clk *clocktest.Offset // the coordinators' clock, moved through renewal periods
}

func (w *world) apply(typ fsm.CommandType, p any) any {
	w.t.Helper()
	env, err := fsm.NewEnvelope(typ, w.clk.Now(), p)
	if err != nil {
		w.t.Fatal(err)
	}
	for try := 0; ; try++ {
		l := w.c.WaitLeader(15 * time.Second)
		res, err := w.c.Nodes[l].Server.API.Apply(context.Background(), env)
		if err == nil {
			if res.Err != nil {
				w.t.Fatalf("command %d: %v", typ, res.Err)
			}
			return res.Value
		}
		if try > 20 {
			w.t.Fatalf("command %d: %v", typ, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// state is what one replica holds of the test's servers: per server its
// renewal invoices, paid_until and suspension; the outbox's events by type.
type state struct {
	invoices  map[string]int // server → renewal invoices
	paidUntil map[string]time.Time
	suspended map[string]bool
	events    map[string]int
	balance   int64
}

func read(t *testing.T, n *testcluster.Node) state {
	st := state{invoices: map[string]int{}, paidUntil: map[string]time.Time{}, suspended: map[string]bool{}, events: map[string]int{}}
	err := n.Server.Node.FSM.View(func(tx *bolt.Tx) error {
		if err := tx.Bucket(store.BucketInvoices).ForEach(func(_, v []byte) error {
			var inv store.Invoice
			if err := json.Unmarshal(v, &inv); err != nil {
				return err
			}
			if inv.ServerID != "" {
				st.invoices[inv.ServerID]++
			}
			return nil
		}); err != nil {
			return err
		}
		if err := tx.Bucket(store.BucketServers).ForEach(func(_, v []byte) error {
			var s store.Server
			if err := json.Unmarshal(v, &s); err != nil {
				return err
			}
			if s.PaidUntil != nil {
				st.paidUntil[s.ID] = *s.PaidUntil
			}
			st.suspended[s.ID] = s.Suspension != nil
			return nil
		}); err != nil {
			return err
		}
		var acc api.Account
		if err := store.GetJSON(tx, store.BucketAccounts, []byte("acc_1"), &acc); err != nil {
			return err
		}
		st.balance = acc.BalanceUsdCents
		return tx.Bucket(store.BucketOutbox).ForEach(func(_, v []byte) error {
			var e store.Event
			if err := json.Unmarshal(v, &e); err != nil {
				return err
			}
			st.events[e.Type]++
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// eventually polls cond on every running replica until it holds.
func (w *world) eventually(what string, cond func(st state) bool) {
	w.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ok := true
		var last state
		for _, n := range w.c.Nodes {
			if n.Server == nil {
				continue
			}
			last = read(w.t, n)
			ok = ok && cond(last)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("%s: not reached; a replica holds %+v", what, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestRenewalsAcrossLeaderChange: three coordinators (real Raft, in one
// process) run the renewal job every 100 ms on a clock the test moves; the
// leader is killed between the renewal invoice and the suspension. Each
// server gets one invoice for its period, is suspended once when unpaid at
// due+3 days, and a top-up settles one renewal and lifts its suspension
// once; the events fire once each on every replica (the double renewal of
// FOSSBilling #3106 cannot happen: the FSM decides from the command's time
// and the server's recorded period).
func TestRenewalsAcrossLeaderChange(t *testing.T) {
	clk := &clocktest.Offset{}
	c := testcluster.New(t, 3, func(_ int, cfg *server.Config) {
		cfg.Clock = clk.Now
		cfg.Renewals = server.RenewalConfig{InvoiceDays: 7, SuspendDays: 3, Interval: 100 * time.Millisecond}
	})
	w := &world{t: t, c: c, clk: clk}
	now := clk.Now()
	w.apply(fsm.CmdAccountCreate, fsm.AccountCreate{ID: "acc_1", Email: "renew@example.com"})
	w.apply(fsm.CmdNodeCAInit, fsm.NodeCAInit{CertDER: []byte{1}, SealedKey: "v1.x", Fingerprint: "fp"})
	w.apply(fsm.CmdNodeTokenCreate, fsm.NodeTokenCreate{ID: "jt_1", Hash: "h1", ExpiresAt: now.Add(time.Hour)})
	w.apply(fsm.CmdNodeEnrol, fsm.NodeEnrol{TokenID: "jt_1", TokenHash: "h1", NodeID: "hv-1", CertSerial: "s1", CertNotAfter: now.Add(24 * time.Hour)})
	w.apply(fsm.CmdProductPut, fsm.ProductPut{Slug: "vps-1", Create: true, Product: api.ProductRequest{Category: api.ProductVPS, NameEn: "VPS 1",
		RetailMonthlyUsdCents: 700, Specs: api.ProductSpecs{VCPU: 1, RAMMB: 1024, DiskGB: 20}}})
	w.apply(fsm.CmdWalletCredit, fsm.WalletCredit{TxID: "wtx_dep", AccountID: "acc_1", AmountUsdCents: 1400})
	var finish []fsm.ActionFinish
	for i := 1; i <= 2; i++ {
		srv := fmt.Sprintf("srv_%d", i)
		w.apply(fsm.CmdServerOrder, fsm.ServerOrder{PlanSlug: "vps-1",
			Create: fsm.ServerCreate{
				Server: store.Server{Server: api.Server{ID: srv, Label: "web", OSTemplate: "debian-12", OS: "debian"},
					AccountID: "acc_1", NodeID: "hv-1", VMName: "hp-" + srv},
				Action: store.Action{Action: api.Action{ID: fmt.Sprintf("act_%d", i), Command: api.ActionServerProvision, ResourceID: srv},
					NodeID: "hv-1", Target: "hp-" + srv, Deadline: now.Add(time.Hour)},
			},
			InvoiceID: fmt.Sprintf("inv_%d", i), PaymentID: fmt.Sprintf("pay_%d", i), TxID: fmt.Sprintf("wtx_%d", i)})
		finish = append(finish, fsm.ActionFinish{ID: fmt.Sprintf("act_%d", i), Success: true})
	}
	w.apply(fsm.CmdActionsFinished, fsm.ActionsFinished{Results: finish})
	due := read(t, c.Nodes[c.WaitLeader(5*time.Second)]).paidUntil["srv_2"]

	// The renewal window opens: one invoice per server.
	clk.Advance(due.AddDate(0, 0, -7).Sub(clk.Now()) + time.Hour)
	w.eventually("renewal invoices", func(st state) bool { return st.invoices["srv_1"] == 1 && st.invoices["srv_2"] == 1 })
	time.Sleep(500 * time.Millisecond) // five more sweeps

	// The leader dies; the new one sweeps the same servers.
	old := c.WaitLeader(5 * time.Second)
	c.Kill(old)
	t.Cleanup(func() {
		if c.Nodes[old].Server == nil {
			c.Restart(old)
		}
	})
	c.WaitLeader(15 * time.Second)
	clk.Advance(3*24*time.Hour + 7*24*time.Hour) // due + 3 days + 1 hour
	w.eventually("suspension", func(st state) bool { return st.suspended["srv_1"] && st.suspended["srv_2"] })
	time.Sleep(500 * time.Millisecond)
	c.Restart(old)
	w.eventually("the old leader caught up", func(st state) bool { return st.suspended["srv_1"] && st.suspended["srv_2"] })

	// A top-up covering one renewal lifts one suspension, once.
	w.apply(fsm.CmdWalletCredit, fsm.WalletCredit{TxID: "wtx_dep2", AccountID: "acc_1", AmountUsdCents: 700})
	w.eventually("unsuspension", func(st state) bool { return st.suspended["srv_1"] != st.suspended["srv_2"] })
	time.Sleep(500 * time.Millisecond)
	w.eventually("exactly once", func(st state) bool {
		return st.invoices["srv_1"] == 1 && st.invoices["srv_2"] == 1 && st.balance == 0 &&
			st.events["invoice.created"] == 4 && st.events["invoice.paid"] == 3 && st.events["server.suspended"] == 2
	})
	var paid int
	for _, n := range c.Nodes {
		st := read(t, n)
		paid = 0
		for srv, until := range st.paidUntil {
			if until.After(due.Add(time.Hour)) {
				paid++
				if st.suspended[srv] {
					t.Fatalf("%s: %s paid but suspended", n.ID, srv)
				}
			}
		}
		if paid != 1 {
			t.Fatalf("%s: %d servers renewed, want 1: %+v", n.ID, paid, st.paidUntil)
		}
	}
}
