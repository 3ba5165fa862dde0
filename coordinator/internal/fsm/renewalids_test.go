package fsm

import (
	"fmt"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
)

// TestRenewalInvoiceIDsOfOneEntryDiffer: two renewal sweeps committed in one
// Raft entry (a group commit: they share its index, so each command's
// sweepIDs derives the same first invoice id) make two invoices with ids of
// their own: the second sweep's sweepIDs.next probes past the id the first
// took. Below LevelOwnerIDs that id is in invoice_ids; from it, in
// owner_ids, and the probe must read both (store.OwnerOf). Each invoice is
// then the account's, paid by its own id; the replicas stay the same.
func TestRenewalInvoiceIDsOfOneEntryDiffer(t *testing.T) {
	for _, level := range []uint16{LevelOwnerIDs - 1, LevelOwnerIDs} {
		t.Run(fmt.Sprintf("level %d", level), func(t *testing.T) {
			h, pol, due := twoRunningServers(t, level)
			var cmds []*Envelope
			for _, srv := range []string{"srv_1", "srv_2"} {
				e, err := NewEnvelope(CmdRenewalSweep, h.at, RenewalSweep{Policy: pol, Servers: []ServiceRef{{AccountID: "acc_1", ServerID: srv}}})
				if err != nil {
					t.Fatal(err)
				}
				cmds = append(cmds, e)
			}
			h.at = due.AddDate(0, 0, -7).Add(-time.Second) // batch adds one second
			for i, r := range h.batch(cmds...) {
				if res, ok := r.Value.(RenewalSweepResult); r.Err != nil || !ok || res.Invoiced != 1 {
					t.Fatalf("sweep %d of the entry: %+v %v, want one invoice", i, r.Value, r.Err)
				}
			}
			inv1, inv2 := renewalServer(t, h, "srv_1").Renewal, renewalServer(t, h, "srv_2").Renewal
			if inv1 == nil || inv2 == nil || inv1.InvoiceID == inv2.InvoiceID {
				t.Fatalf("the two sweeps' renewals %+v and %+v: want two invoices of their own", inv1, inv2)
			}
			var n int
			if err := h.fsms[0].Read(func(r store.ReadTx) (err error) { _, n, err = r.Invoices("acc_1", 0, 10); return }); err != nil || n != 4 {
				t.Fatalf("acc_1 has %d invoices (%v), want 4: two orders' and two renewals'", n, err)
			}
			h.must(CmdWalletCredit, WalletCredit{TxID: "wtx_top", AccountID: "acc_1", AmountUsdCents: 2400})
			for i, id := range []string{inv1.InvoiceID, inv2.InvoiceID} {
				v := h.must(CmdInvoicePay, InvoicePay{InvoiceID: id, PaymentID: fmt.Sprintf("pay_r%d", i), TxID: fmt.Sprintf("wtx_r%d", i)})
				if inv, ok := v.(api.Invoice); !ok || inv.ID != id || inv.Status != api.InvoicePaid {
					t.Fatalf("invoice %s paid by id: %+v", id, v)
				}
			}
			h.replicasSame(orderDump)
		})
	}
}

// twoRunningServers is the set-up the id tests of renewals share: a server
// harness at level, acc_1's two VPS orders (wallet 2400 cents) provisioned,
// the renewal policy (invoice 7 days before, suspend 3 after, terminate 10
// after) and srv_2's paid-until.
func twoRunningServers(t *testing.T, level uint16) (*whHarness, RenewalPolicy, time.Time) {
	t.Helper()
	h := newServerHarness(t)
	h.must(CmdClusterLevel, ClusterLevel{Level: level})
	twoVPS2Orders(h, 2400)
	h.must(CmdActionsFinished, ActionsFinished{Results: []ActionFinish{{ID: "act_1", Success: true}, {ID: "act_2", Success: true}}})
	return h, RenewalPolicy{InvoiceDays: 7, SuspendDays: 3, TerminateDays: 10}, *renewalServer(t, h, "srv_2").PaidUntil
}
