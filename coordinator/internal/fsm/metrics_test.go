package fsm

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
)

// TestCollectorsCountTransactionsAndPages: each applied batch is one
// transaction, whatever its entries, and writes pages (at least its meta
// page); a no-op entry too, since the applied index moves.
func TestCollectorsCountTransactionsAndPages(t *testing.T) {
	f := open(t, filepath.Join(t.TempDir(), "fsm.db"))
	defer f.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(f.Collectors()...)
	read := func(name string) float64 {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == name {
				return mf.GetMetric()[0].GetCounter().GetValue()
			}
		}
		t.Fatalf("no %s in %v", name, mfs)
		return 0
	}
	txs := func() float64 { return read("hostplane_fsm_transactions_total") }
	pages := func() float64 { return read("hostplane_fsm_pages_written_total") }
	at := time.Date(2026, 12, 2, 7, 0, 0, 0, time.UTC)
	one := logAt(t, 1, CmdAccountCreate, at, AccountCreate{ID: "acc_1", Email: "a@example.com"})
	f.ApplyBatch([]*raft.Log{one})
	if txs() != 1 || pages() < 1 {
		t.Fatalf("after one entry: %v transactions, %v pages", txs(), pages())
	}
	p1 := pages()
	var batch []*raft.Log
	for i := uint64(2); i <= 4; i++ {
		batch = append(batch, logAt(t, i, CmdWalletCredit, at, WalletCredit{TxID: "wtx_" + string(rune('a'+i)), AccountID: "acc_1", AmountUsdCents: 100}))
	}
	f.ApplyBatch(batch)
	if txs() != 2 || pages() <= p1 {
		t.Fatalf("after a batch of three: %v transactions, %v pages (%v before)", txs(), pages(), p1)
	}
	p2 := pages()
	f.Apply(&raft.Log{Index: 5, Type: raft.LogNoop})
	if txs() != 3 || pages() <= p2 {
		t.Fatalf("after a no-op entry (the applied index moves): %v transactions, %v pages", txs(), pages())
	}
}
