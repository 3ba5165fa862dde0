package renewal_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/renewal"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/internal/proccpu"
	"github.com/hostplane/hostplane/pkg/api"
)

const benchServers = 100_000

// benchState builds, once per run, an FSM database holding benchServers
// bought servers of one account (100 accounts' worth of wallet in it) and
// returns its file and the servers' paid_until.
func benchState(b *testing.B, dir string) (string, time.Time) {
	b.Helper()
	path := filepath.Join(dir, "populated.db")
	f, err := fsm.Open(path, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	at := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	var idx uint64
	var logs []*raft.Log
	add := func(typ fsm.CommandType, p any) {
		env, err := fsm.NewEnvelope(typ, at, p)
		if err != nil {
			b.Fatal(err)
		}
		data, _ := env.Encode()
		idx++
		logs = append(logs, &raft.Log{Index: idx, Type: raft.LogCommand, Data: data})
	}
	flush := func() {
		for i, r := range f.ApplyBatch(logs) {
			if res, ok := r.(*fsm.Result); !ok || res.Err != nil {
				b.Fatalf("populate entry %d: %+v", logs[i].Index, r)
			}
		}
		logs = logs[:0]
	}
	add(fsm.CmdAccountCreate, fsm.AccountCreate{ID: "acc_1", Email: "bench@example.com"})
	add(fsm.CmdNodeCAInit, fsm.NodeCAInit{CertDER: []byte{1}, SealedKey: "v1.x", Fingerprint: "fp"})
	add(fsm.CmdNodeTokenCreate, fsm.NodeTokenCreate{ID: "jt_1", Hash: "h1", ExpiresAt: at.Add(time.Hour)})
	add(fsm.CmdNodeEnrol, fsm.NodeEnrol{TokenID: "jt_1", TokenHash: "h1", NodeID: "hv-1", CertSerial: "s1", CertNotAfter: at.Add(24 * time.Hour)})
	add(fsm.CmdProductPut, fsm.ProductPut{Slug: "vps-1", Create: true, Product: api.ProductRequest{Category: api.ProductVPS, NameEn: "VPS 1",
		RetailMonthlyUsdCents: 100, Specs: api.ProductSpecs{VCPU: 1, RAMMB: 1024, DiskGB: 20}}})
	add(fsm.CmdWalletCredit, fsm.WalletCredit{TxID: "wtx_dep", AccountID: "acc_1", AmountUsdCents: 2 * benchServers * 100})
	flush()
	for i := 0; i < benchServers; i++ {
		srv := fmt.Sprintf("srv_%06d", i)
		add(fsm.CmdServerOrder, fsm.ServerOrder{PlanSlug: "vps-1",
			Create: fsm.ServerCreate{
				Server: store.Server{Server: api.Server{ID: srv, Label: "web", OSTemplate: "debian-12", OS: "debian"},
					AccountID: "acc_1", NodeID: "hv-1", VMName: "hp-" + srv},
				Action: store.Action{Action: api.Action{ID: "act_" + srv, Command: api.ActionServerProvision, ResourceID: srv},
					NodeID: "hv-1", Target: "hp-" + srv, Deadline: at.Add(time.Hour)},
			},
			InvoiceID: "inv_" + srv, PaymentID: "pay_" + srv, TxID: "wtx_" + srv})
		if len(logs) == 1000 {
			flush()
		}
	}
	flush()
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	return path, at.AddDate(0, 1, 0)
}

func copyFile(b *testing.B, from, to string) {
	in, err := os.Open(from)
	if err != nil {
		b.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		b.Fatal(err)
	}
	if err := out.Close(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkRenewalSweep100k: the leader's renewal sweep over 100,000 bought
// servers on their due date, the heaviest step (each gets its renewal
// invoice and pays it from the wallet: invoice, payment, wallet transaction,
// paid_until, two events): renewal.Job.Sweep listing the candidates and
// applying its RenewalSweep entries to the FSM (bbolt, fsync off as the
// coordinator runs it). Raft's replication of the ~100 entries is not in
// the figure. Reports entries/op (aim ≤ 100) and s/op (aim < 10), and
// cpu-s/sweep: the process's CPU time (user+system, GC included) during the
// sweep, steadier than the wall time on a shared, loaded machine.
func BenchmarkRenewalSweep100k(b *testing.B) {
	dir := b.TempDir()
	populated, due := benchState(b, dir)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		path := filepath.Join(dir, fmt.Sprintf("run%d.db", i))
		copyFile(b, populated, path)
		f, err := fsm.Open(path, slog.New(slog.DiscardHandler))
		if err != nil {
			b.Fatal(err)
		}
		idx := uint64(benchServers + 100)
		j := &renewal.Job{Policy: fsm.RenewalPolicy{InvoiceDays: 7, SuspendDays: 3}, Now: func() time.Time { return due },
			View: f.View, Apply: func(_ context.Context, env *fsm.Envelope) (*fsm.Result, error) {
				data, err := env.Encode()
				if err != nil {
					return nil, err
				}
				idx++
				return f.Apply(&raft.Log{Index: idx, Type: raft.LogCommand, Data: data}).(*fsm.Result), nil
			}}
		b.StartTimer()
		cpu0 := proccpu.Self()
		start := time.Now()
		st, err := j.Sweep(context.Background())
		b.StopTimer()
		b.ReportMetric(time.Since(start).Seconds(), "s/sweep")
		b.ReportMetric((proccpu.Self() - cpu0).Seconds(), "cpu-s/sweep")
		if err != nil {
			b.Fatal(err)
		}
		if st.Invoiced != benchServers || st.Paid != benchServers || st.Entries > 100 {
			b.Fatalf("sweep %+v: want %d invoiced and paid in at most 100 entries", st, benchServers)
		}
		b.ReportMetric(float64(st.Entries), "entries/op")
		b.ReportMetric(st.Listed.Seconds(), "s-listing/op")
		_ = f.Close()
		_ = os.Remove(path)
		b.StartTimer()
	}
}
