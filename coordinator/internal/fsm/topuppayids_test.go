package fsm

import (
	"bytes"
	"flag"
	"fmt"
	"strings"
	"testing"

	"github.com/hostplane/hostplane/coordinator/internal/ids"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
)

var updateTopUpPayGolden = flag.Bool("update-top-up-pay-golden", false, "rewrite testdata/topuppay_level16.golden and topuppay_level17.golden")

// TestTopUpPaymentIDsOfOneEntryDiffer: two wallet top-ups committed in one
// Raft entry (a group commit: one index, one clamped time), each paying a
// renewal suspended for non-payment. From LevelPaymentIDs the two payments
// have ids of their own, each its transaction's with the "pay" prefix; below
// it the log applies byte for byte as before (the golden of level 16, made
// by the code before the level: both payments took one derived id).
func TestTopUpPaymentIDsOfOneEntryDiffer(t *testing.T) {
	for _, level := range []uint16{LevelPaymentIDs - 1, LevelPaymentIDs} {
		t.Run(fmt.Sprintf("level %d", level), func(t *testing.T) {
			h, pol, due := twoRunningServers(t, level)
			sweepAt(h, due.AddDate(0, 0, -7), pol, "srv_1", "srv_2")
			if r := sweepAt(h, due.AddDate(0, 0, 3), pol, "srv_1", "srv_2"); r.Suspended != 2 {
				t.Fatalf("due+3: %+v", r)
			}
			var cmds []*Envelope
			var deposits []string
			for i := range 2 {
				// As a handler makes a top-up's transaction id (ids.New),
				// but the same on every run.
				dep := ids.Derived("wtx", h.at, uint64(900+i), 7)
				deposits = append(deposits, dep)
				e, err := NewEnvelope(CmdWalletCredit, h.at, WalletCredit{TxID: dep, AccountID: "acc_1", AmountUsdCents: 1200})
				if err != nil {
					t.Fatal(err)
				}
				cmds = append(cmds, e)
			}
			for i, r := range h.batch(cmds...) {
				if r.Err != nil {
					t.Fatalf("top-up %d of the entry: %v", i, r.Err)
				}
			}
			var pays []api.Payment
			for _, srv := range []string{"srv_1", "srv_2"} {
				s := renewalServer(t, h, srv)
				if s.Suspension != nil || s.Renewal == nil {
					t.Fatalf("%s after the top-ups: %+v", srv, s)
				}
				inv := readOne(t, h.fsms[0], func(r store.ReadTx) (store.Invoice, error) { return r.Invoice("acc_1", s.Renewal.InvoiceID) })
				if inv.Status != api.InvoicePaid || len(inv.Payments) != 1 {
					t.Fatalf("%s's renewal invoice %+v", srv, inv.Invoice)
				}
				pays = append(pays, inv.Payments[0])
			}
			if level >= LevelPaymentIDs {
				if pays[0].ID == pays[1].ID || pays[0].TransactionID == pays[1].TransactionID {
					t.Fatalf("the two top-ups' renewal payments %+v and %+v: want ids of their own", pays[0], pays[1])
				}
				for i, p := range pays {
					if want, _ := ids.Successor("wtx", deposits[i], 1); p.TransactionID != want || p.ID != "pay"+strings.TrimPrefix(want, "wtx") || !ids.Valid("pay", p.ID) {
						t.Fatalf("top-up %d's payment %+v: want the transaction right after its deposit (%s) and the payment id of its body", i, p, want)
					}
				}
			}
			var out bytes.Buffer
			dumpBuckets(&out, h.fsms[0], store.BucketInvoices, store.BucketWalletTx)
			name := fmt.Sprintf("topuppay_level%d.golden", level)
			_, want := readGolden(t, name, *updateTopUpPayGolden, out.Bytes())
			if !bytes.Equal(out.Bytes(), want) {
				t.Fatalf("the level-%d top-ups applied otherwise than %s:\n%s\nwant:\n%s", level, name, out.Bytes(), want)
			}
			h.replicasSame(orderDump)
		})
	}
}
