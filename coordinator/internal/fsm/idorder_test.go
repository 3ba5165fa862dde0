package fsm

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/ids"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
	bolt "go.etcd.io/bbolt"
)

// madeID is one id the FSM made (a refund's wallet transaction or a
// cleanup action) as a customer's list shows it, with the failed order it
// came from.
type madeID struct {
	order string // srv_N
	id    string
	at    time.Time // its record's created_at
}

// refundsAndCleanups is acc_1's refund transactions and its servers'
// cleanup actions (server.terminate opened by a failed provisioning) on f,
// each tied to the server whose order failed, in id order (the lists'
// order).
func refundsAndCleanups(t *testing.T, f *FSM) (refunds, cleanups []madeID) {
	t.Helper()
	_ = f.Read(func(r store.ReadTx) error {
		txs, _, err := r.WalletTransactions("acc_1", 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, tx := range txs {
			if tx.Type == api.TxRefund {
				inv := strings.TrimPrefix(tx.InvoiceID, "inv_")
				refunds = append(refunds, madeID{order: "srv_" + inv, id: tx.ID, at: tx.CreatedAt})
			}
		}
		return nil
	})
	_ = f.View(func(tx *bolt.Tx) error {
		return tx.Bucket(store.BucketActions).ForEach(func(k, v []byte) error {
			var a store.Action
			if err := json.Unmarshal(v, &a); err != nil {
				t.Fatal(err)
			}
			if a.Meta[metaCleanupOf] != "" {
				cleanups = append(cleanups, madeID{order: a.ResourceID, id: a.ID, at: a.CreatedAt})
			}
			return nil
		})
	})
	for _, l := range [][]madeID{refunds, cleanups} {
		slices.SortFunc(l, func(a, b madeID) int { return strings.Compare(a.id, b.id) })
	}
	return refunds, cleanups
}

// idOrderHarness is two replicas at semantics level lvl with five bought
// servers srv_1..srv_5 (orders of 1200 cents, their ids the handler's).
func idOrderHarness(t *testing.T, lvl uint16) *whHarness {
	h := newServerHarness(t)
	h.must(CmdClusterLevel, ClusterLevel{Level: lvl})
	h.putVPS2(1200)
	h.must(CmdWalletCredit, WalletCredit{TxID: "wtx_dep", AccountID: "acc_1", AmountUsdCents: 6000})
	for n := 1; n <= 5; n++ {
		h.must(CmdServerOrder, testOrder(n, "vps-2"))
	}
	return h
}

// failAt applies, stamped at (the time the proposer's request started),
// the failure of srv_n's provisioning: the FSM refunds the order (a wallet
// transaction) and opens the server's cleanup (an action), both ids it
// makes itself.
func failAt(h *whHarness, at time.Time, n int) {
	h.t.Helper()
	h.at = at.Add(-time.Second) // apply adds one second
	h.must(CmdActionFinish, ActionFinish{ID: fmt.Sprintf("act_%d", n), ErrorCode: "not_found",
		ErrorMessage: "provision: unknown template debian-12", CleanupDeadlineSeconds: 600})
}

// TestFSMMadeIDsInCommitOrder: at level 13, the ids the FSM makes for
// records (here a failed order's refund transaction and cleanup action,
// which the wallet's history and the actions list show newest first by
// id) sort in the order their commands committed although the commands'
// times go backwards (racing requests), created_at follows, two replicas
// stay byte-equal and a replica restored from a snapshot clamps alike; at
// level 12 they are exactly what they were (golden): the command's time and
// Raft index, out of commit order.
func TestFSMMadeIDsInCommitOrder(t *testing.T) {
	base := time.Date(2026, 6, 3, 12, 0, 0, 0, time.UTC)
	s := func(n int) time.Time { return base.Add(time.Duration(n) * time.Second) }
	// Committed in this order, stamped going backwards.
	order := []struct {
		n  int
		at time.Time
	}{{3, s(40)}, {1, s(30)}, {5, s(35)}, {2, s(20)}}

	h := idOrderHarness(t, LevelIDOrder)
	for _, f := range order {
		failAt(h, f.at, f.n)
	}
	refunds, cleanups := refundsAndCleanups(t, h.fsms[0])
	for what, l := range map[string][]madeID{"refund transactions": refunds, "cleanup actions": cleanups} {
		if len(l) != len(order) {
			t.Fatalf("%d %s, want %d", len(l), what, len(order))
		}
		for i, m := range l {
			if want := fmt.Sprintf("srv_%d", order[i].n); m.order != want {
				t.Errorf("%s by id: #%d is %s's (%s), want %s's: ids out of commit order", what, i, m.order, m.id, want)
			}
			if i > 0 && m.at.Before(l[i-1].at) {
				t.Errorf("%s by id: #%d's created_at %s is before #%d's %s", what, i, m.at, i-1, l[i-1].at)
			}
		}
		// The first keeps its command's own time (the latest so far).
		if !l[0].at.Equal(s(40)) {
			t.Errorf("%s: the first one's created_at is %s, want its command's %s", what, l[0].at, s(40))
		}
	}
	dump := func(f *FSM) []byte {
		return bucketDump(f, store.BucketWalletTx, store.BucketActions, store.BucketInvoices, store.BucketMeta)
	}
	h.replicasSame(dump)

	// A replica that installs replica 0's snapshot goes on clamping alike.
	c := open(t, filepath.Join(t.TempDir(), "c.db"))
	defer c.Close()
	snapshotAt(t, backup(t, h.fsms[0]), h.idx)(c)
	h.fsms = append(h.fsms, c)
	failAt(h, s(10), 4)
	refunds, cleanups = refundsAndCleanups(t, c)
	if len(refunds) != 5 || refunds[4].order != "srv_4" || len(cleanups) != 5 || cleanups[4].order != "srv_4" {
		t.Fatalf("after the restore, the last refund and cleanup by id are not srv_4's (the last committed): %+v %+v", refunds, cleanups)
	}
	h.replicasSame(dump)

	// Level 12: the command's time and Raft index, as before.
	old := idOrderHarness(t, LevelIDOrder-1)
	first := old.idx + 1
	for _, f := range order {
		failAt(old, f.at, f.n)
	}
	refunds, cleanups = refundsAndCleanups(t, old.fsms[0])
	var gotTx, gotAct, wantTx, wantAct []string
	for i, f := range order {
		idx := first + uint64(i)
		wantTx = append(wantTx, ids.Derived("wtx", f.at, idx, 0x8000))
		wantAct = append(wantAct, ids.Derived("act", f.at, idx, 0x4000))
	}
	for i := range refunds {
		gotTx, gotAct = append(gotTx, refunds[i].id), append(gotAct, cleanups[i].id)
	}
	slices.Sort(wantTx)
	slices.Sort(wantAct)
	if !slices.Equal(gotTx, wantTx) || !slices.Equal(gotAct, wantAct) {
		t.Fatalf("level 12 ids changed:\n got %v %v\nwant %v %v", gotTx, gotAct, wantTx, wantAct)
	}
	if refunds[0].order == "srv_3" {
		t.Fatal("level 12's first refund by id is the first committed: the log does not show the race")
	}
	for _, m := range slices.Concat(refunds, cleanups) {
		var at time.Time
		for _, f := range order {
			if fmt.Sprintf("srv_%d", f.n) == m.order {
				at = f.at
			}
		}
		if !m.at.Equal(at) {
			t.Fatalf("level 12 created_at of %s is %s, want its command's %s", m.id, m.at, at)
		}
	}
}

// TestFSMMadeIDsAfterTheLevelRaise: an id made at level 12 by a command
// that emitted no event (a failed order's refund and cleanup), stamped
// later than the raise's command, still sorts before the ids made from
// level 13: the raise seeds the clamp with the latest id time the actions,
// wallet transactions and invoices hold.
func TestFSMMadeIDsAfterTheLevelRaise(t *testing.T) {
	base := time.Date(2026, 6, 3, 12, 0, 0, 0, time.UTC)
	s := func(n int) time.Time { return base.Add(time.Duration(n) * time.Second) }
	h := idOrderHarness(t, LevelIDOrder-1)
	failAt(h, s(50), 1)
	h.at = s(44)
	h.must(CmdClusterLevel, ClusterLevel{Level: LevelIDOrder}) // stamped 45 s
	failAt(h, s(46), 2)
	refunds, cleanups := refundsAndCleanups(t, h.fsms[0])
	for what, l := range map[string][]madeID{"refund transactions": refunds, "cleanup actions": cleanups} {
		if len(l) != 2 || l[0].order != "srv_1" || l[1].order != "srv_2" {
			t.Errorf("%s by id: %+v; want srv_1's (level 12, 50 s) then srv_2's (level 13, 46 s)", what, l)
		}
	}
	h.replicasSame(func(f *FSM) []byte { return bucketDump(f, store.BucketMeta) })
}

// TestWrongClockDoesNotHoldLaterIDs: one failure stamped by a coordinator
// whose clock was a year ahead does not hold the ids (and created_at) of
// later records a year ahead (hlc.MaxAhead), as for events.
func TestWrongClockDoesNotHoldLaterIDs(t *testing.T) {
	base := time.Date(2026, 6, 3, 12, 0, 0, 0, time.UTC)
	h := idOrderHarness(t, LevelIDOrder)
	failAt(h, base.Add(365*24*time.Hour), 1)
	failAt(h, base.Add(2*time.Second), 2)
	failAt(h, base.Add(time.Second), 3) // raced entry 2's request
	refunds, _ := refundsAndCleanups(t, h.fsms[0])
	if len(refunds) != 3 {
		t.Fatalf("%d refunds", len(refunds))
	}
	for _, m := range refunds[:2] {
		if m.at.Sub(base) > 24*time.Hour {
			t.Errorf("refund %s (%s) has created_at %s: held a year ahead by one wrong clock's id", m.id, m.order, m.at)
		}
	}
	if refunds[0].order != "srv_2" || refunds[1].order != "srv_3" || !refunds[1].at.Equal(base.Add(2*time.Second)) {
		t.Fatalf("after the wrong clock: %+v, want srv_2's then srv_3's at %s", refunds, base.Add(2*time.Second))
	}
}

// TestIDTimeOf: idTimeOf reads the time part of ids.New's and ids.Derived's
// ids, and refuses what is not an id.
func TestIDTimeOf(t *testing.T) {
	at := time.Date(2026, 6, 3, 12, 0, 0, 123_000_000, time.UTC)
	for _, id := range []string{ids.New("act", at), ids.Derived("wtx", at, 1<<40, 7), ids.Derived("inv", at, 0, 0)} {
		if got, ok := idTimeOf(id); !ok || !got.Equal(at) {
			t.Errorf("idTimeOf(%s) = %s %v, want %s", id, got, ok, at)
		}
	}
	for _, bad := range []string{"", "act_1", "wtx_dep", "_0000000000000000000000000", "act_" + strings.Repeat("u", 26)} {
		if _, ok := idTimeOf(bad); ok {
			t.Errorf("idTimeOf(%q) ok", bad)
		}
	}
}

// TestDomainSweepsOfOneBatchTakeTheirOwnIDs: two domain sweeps committed
// in one Raft entry (a group commit: one index) take the same clamped time
// from level 13, so a domain renewal's ids (ren, inv, pay, wtx, from its
// place in its sweep) would be the same for the first domain of each: the
// second sweep probes past the first's, and both renewals keep their own
// invoice and payment.
func TestDomainSweepsOfOneBatchTakeTheirOwnIDs(t *testing.T) {
	h := newServerHarness(t)
	h.must(CmdClusterLevel, ClusterLevel{Level: LevelIDOrder})
	h.putDomainTest()
	h.must(CmdWalletCredit, WalletCredit{TxID: "wtx_dep", AccountID: "acc_1", AmountUsdCents: 4000})
	for _, id := range []string{"dom_1", "dom_2"} {
		h.registered(id, id[4:]+".test")
	}
	pol := DomainPolicy{RenewDays: 30}
	h.at = getRegDomain(t, h.fsms[0], "dom_1").ExpiresAt.AddDate(0, 0, -29)
	res := h.batch(cmd(CmdDomainSweep, DomainSweep{Policy: pol, Domains: []string{"dom_1"}}),
		cmd(CmdDomainSweep, DomainSweep{Policy: pol, Domains: []string{"dom_2"}}))
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("sweep %d: %v", i, r.Err)
		}
	}
	d1, d2 := getRegDomain(t, h.fsms[0], "dom_1"), getRegDomain(t, h.fsms[0], "dom_2")
	if d1.Op == nil || d2.Op == nil || d1.Op.ID == d2.Op.ID || d1.Op.InvoiceID == d2.Op.InvoiceID {
		t.Fatalf("the two renewals share ids: %+v %+v", d1.Op, d2.Op)
	}
	if b := balance(t, h.fsms[0], "acc_1"); b != 4000-4*1000 {
		t.Fatalf("balance %d, want both renewals paid (0)", b)
	}
	_ = h.fsms[0].Read(func(r store.ReadTx) error {
		invs, _, err := r.Invoices("acc_1", 0, 10)
		if err != nil || len(invs) != 4 {
			t.Fatalf("%d invoices (%v), want 4: two orders, two renewals", len(invs), err)
		}
		txs, _, err := r.WalletTransactions("acc_1", 0, 10)
		if err != nil || len(txs) != 5 {
			t.Fatalf("%d wallet transactions (%v), want 5", len(txs), err)
		}
		return nil
	})
	h.replicasSame(domainDump)
}
