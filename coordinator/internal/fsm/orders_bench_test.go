package fsm

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/hostplane/hostplane/coordinator/internal/ids"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/internal/proccpu"
	"github.com/hostplane/hostplane/pkg/api"
)

// BenchmarkOrderApply is the FSM's part of an order: applying one
// CmdServerOrder (debit, paid invoice, server, provisioning action, with
// the apply-time capacity check) on a node already holding `held` servers,
// beside applying one CmdTicketCreate on the same database.
//
// cpu-µs/op is the process's CPU time per command (steadier than the wall
// time on a shared machine); pages/op the bbolt pages written per command
// (one transaction each here), the meta page included.
//
//	go test ./coordinator/internal/fsm -run '^$' -bench OrderApply -benchtime 1000x
func BenchmarkOrderApply(b *testing.B) {
	for _, held := range []int{0, 60, 600} {
		b.Run(fmt.Sprintf("order/held=%d", held), func(b *testing.B) { benchApply(b, held, true, false) })
	}
	// An order's three commands as the cluster applies them: the order,
	// its provisioning action's first progress and its successful end.
	b.Run("lifecycle/held=60", func(b *testing.B) { benchApply(b, 60, true, true) })
	b.Run("ticket", func(b *testing.B) { benchApply(b, 0, false, false) })
}

func benchApply(b *testing.B, held int, order, lifecycle bool) {
	f := open(b, filepath.Join(b.TempDir(), "fsm.db"))
	defer f.Close()
	at := time.Date(2026, 6, 3, 10, 0, 0, 0, time.UTC)
	var idx uint64
	apply := func(typ CommandType, p any) {
		b.Helper()
		at = at.Add(time.Millisecond)
		idx++
		if r := f.Apply(logAt(b, idx, typ, at, p)).(*Result); r.Err != nil {
			b.Fatalf("command %d: %v", typ, r.Err)
		}
	}
	for _, c := range benchOrderSetup(at, int64(held+b.N+1)*100) {
		apply(c.typ, c.p)
	}
	mk := func(n int) ServerOrder {
		o := testOrder(n, "vps-1")
		o.Create.CPUOvercommit = 4
		return o
	}
	for i := 0; i < held; i++ {
		apply(CmdServerOrder, mk(1_000_000+i))
	}
	b.ResetTimer()
	cpu0, pages0 := proccpu.Self(), pagesWritten(f)
	for i := 0; i < b.N; i++ {
		if order {
			o := mk(i)
			apply(CmdServerOrder, o)
			if lifecycle {
				apply(CmdActionProgress, ActionProgress{ID: o.Create.Action.ID, At: at, Step: "accepted"})
				apply(CmdActionFinish, ActionFinish{ID: o.Create.Action.ID, Success: true, Result: json.RawMessage(`{"template":"debian-12"}`)})
			}
		} else {
			apply(CmdTicketCreate, TicketCreate{ID: fmt.Sprintf("tkt_%d", i), AccountID: "acc_1", MessageID: fmt.Sprintf("msg_%d", i),
				Subject: "s", Message: "m", Department: "technical", Priority: "low", PerAccountNumber: true})
		}
	}
	b.StopTimer()
	b.ReportMetric(float64((proccpu.Self()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
	b.ReportMetric(float64(pagesWritten(f)-pages0)/float64(b.N), "pages/op")
	var n int
	_ = f.Read(func(r store.ReadTx) error {
		ss, err := r.NodeServers("hv-1")
		n = len(ss)
		return err
	})
	if order && n != held+b.N {
		b.Fatalf("%d servers on the node, want %d", n, held+b.N)
	}
}

// benchCommand is one command of a benchmark's set-up.
type benchCommand struct {
	typ CommandType
	p   any
}

// benchOrderSetup is what both order benchmarks apply before their orders:
// the cluster at this binary's semantics level (as a cluster of it runs:
// from level 2 on an order also writes its action's account index, which a
// database without a recorded level, at level 1, leaves out), account
// acc_1 with credit cents, the kvm node hv-1 with room for any number of
// servers, and the product vps-1.
func benchOrderSetup(at time.Time, credit int64) []benchCommand {
	return []benchCommand{
		{CmdClusterLevel, ClusterLevel{Level: MaxLevel}},
		{CmdAccountCreate, AccountCreate{ID: "acc_1", Email: "a@example.com"}},
		{CmdNodeCAInit, NodeCAInit{CertDER: []byte{1}, SealedKey: "v1.x", Fingerprint: "fp"}},
		{CmdNodeTokenCreate, NodeTokenCreate{ID: "jt_1", Hash: "h1", ExpiresAt: at.Add(time.Hour)}},
		{CmdNodeEnrol, NodeEnrol{TokenID: "jt_1", TokenHash: "h1", NodeID: "hv-1", CertSerial: "s1", CertNotAfter: at.Add(24 * time.Hour)}},
		{CmdNodeHello, NodeHello{NodeID: "hv-1", CertSerial: "s1", Roles: []string{"kvm"}, ProtocolVersion: 103,
			Capacity: api.AgentNodeCapacity{VCPUs: 1 << 20, MemoryBytes: 1 << 50, DiskBytes: 1 << 60}}},
		{CmdProductPut, ProductPut{Slug: "vps-1", Create: true, Product: api.ProductRequest{Category: api.ProductVPS, NameEn: "VPS 1",
			RetailMonthlyUsdCents: 100, Specs: api.ProductSpecs{VCPU: 1, RAMMB: 256, DiskGB: 1}}}},
		{CmdWalletCredit, WalletCredit{TxID: "wtx_dep", AccountID: "acc_1", AmountUsdCents: credit}},
	}
}

// pagesWritten is how many pages f's database has written since it opened.
func pagesWritten(f *FSM) int64 {
	st := f.db.Stats()
	return st.TxStats.GetWrite()
}

// BenchmarkOrderApplyBatched is an order's three commands (the order, its
// action's first progress, its end) for k orders applied as the cluster
// does under load: Raft hands the FSM k committed entries at once and they
// share one bbolt transaction (ApplyBatch), so the pages every transaction
// writes (the root's, the meta page, each bucket's branch and last leaf)
// are shared by k orders. cpu-µs/order and pages/order are per order, its
// three commands included.
//
//	go test ./coordinator/internal/fsm -run '^$' -bench OrderApplyBatched -benchtime 300x
func BenchmarkOrderApplyBatched(b *testing.B) {
	for _, k := range []int{1, 4, 16} {
		b.Run(fmt.Sprintf("k=%d", k), func(b *testing.B) { benchApplyBatched(b, k) })
	}
}

func benchApplyBatched(b *testing.B, k int) {
	f := open(b, filepath.Join(b.TempDir(), "fsm.db"))
	defer f.Close()
	at := time.Date(2026, 6, 3, 10, 0, 0, 0, time.UTC)
	var idx uint64
	entry := func(typ CommandType, p any) *raft.Log {
		at = at.Add(time.Millisecond)
		idx++
		return logAt(b, idx, typ, at, p)
	}
	apply := func(logs ...*raft.Log) {
		for i, r := range f.ApplyBatch(logs) {
			if err := r.(*Result).Err; err != nil {
				b.Fatalf("entry %d of %d: %v", i, len(logs), err)
			}
		}
	}
	for _, c := range benchOrderSetup(at, int64(b.N*k+1)*100) {
		apply(entry(c.typ, c.p))
	}
	// Ids as the API makes them (time-ordered), so the buckets grow as in
	// a cluster.
	mk := func() ServerOrder {
		o := testOrder(0, "vps-1")
		s, a := &o.Create.Server, &o.Create.Action
		s.ID, a.ID, o.InvoiceID = ids.New("srv", at), ids.New("act", at), ids.New("inv", at)
		s.VMName, a.Target, a.ResourceID = "hp-"+s.ID, "hp-"+s.ID, s.ID
		o.Create.CPUOvercommit = 4
		return o
	}
	b.ResetTimer()
	cpu0, pages0, flt0 := proccpu.Self(), pagesWritten(f), minorFaults()
	for i := 0; i < b.N; i++ {
		placed := make([]ServerOrder, k)
		var orders, progress, finish []*raft.Log
		for j := range placed {
			placed[j] = mk()
			orders = append(orders, entry(CmdServerOrder, placed[j]))
		}
		for _, o := range placed {
			progress = append(progress, entry(CmdActionProgress, ActionProgress{ID: o.Create.Action.ID, At: at, Step: "accepted"}))
		}
		for _, o := range placed {
			finish = append(finish, entry(CmdActionFinish, ActionFinish{ID: o.Create.Action.ID, Success: true, Result: json.RawMessage(`{"template":"debian-12"}`)}))
		}
		apply(orders...)
		apply(progress...)
		apply(finish...)
	}
	b.StopTimer()
	n := float64(b.N * k)
	b.ReportMetric(float64((proccpu.Self()-cpu0).Microseconds())/n, "cpu-µs/order")
	b.ReportMetric(float64(pagesWritten(f)-pages0)/n, "pages/order")
	b.ReportMetric(float64(minorFaults()-flt0)/n, "minflt/order")
}

// minorFaults is the process's minor page faults so far (getrusage).
func minorFaults() int64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Minflt
}
