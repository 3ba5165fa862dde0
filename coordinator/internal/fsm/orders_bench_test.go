package fsm

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"
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
// time on a shared machine).
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
	f, err := Open(filepath.Join(b.TempDir(), "fsm.db"), slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	at := time.Date(2026, 6, 3, 10, 0, 0, 0, time.UTC)
	var idx uint64
	apply := func(typ CommandType, p any) {
		b.Helper()
		at = at.Add(time.Millisecond)
		env, err := NewEnvelope(typ, at, p)
		if err != nil {
			b.Fatal(err)
		}
		data, _ := env.Encode()
		idx++
		if r := f.Apply(&raft.Log{Index: idx, Type: raft.LogCommand, Data: data}).(*Result); r.Err != nil {
			b.Fatalf("command %d: %v", typ, r.Err)
		}
	}
	apply(CmdAccountCreate, AccountCreate{ID: "acc_1", Email: "a@example.com"})
	apply(CmdNodeCAInit, NodeCAInit{CertDER: []byte{1}, SealedKey: "v1.x", Fingerprint: "fp"})
	apply(CmdNodeTokenCreate, NodeTokenCreate{ID: "jt_1", Hash: "h1", ExpiresAt: at.Add(time.Hour)})
	apply(CmdNodeEnrol, NodeEnrol{TokenID: "jt_1", TokenHash: "h1", NodeID: "hv-1", CertSerial: "s1", CertNotAfter: at.Add(24 * time.Hour)})
	apply(CmdNodeHello, NodeHello{NodeID: "hv-1", CertSerial: "s1", Roles: []string{"kvm"}, ProtocolVersion: 103,
		Capacity: api.AgentNodeCapacity{VCPUs: 1 << 20, MemoryBytes: 1 << 50, DiskBytes: 1 << 60}})
	apply(CmdProductPut, ProductPut{Slug: "vps-1", Create: true, Product: api.ProductRequest{Category: api.ProductVPS, NameEn: "VPS 1",
		RetailMonthlyUsdCents: 100, Specs: api.ProductSpecs{VCPU: 1, RAMMB: 256, DiskGB: 1}}})
	apply(CmdWalletCredit, WalletCredit{TxID: "wtx_dep", AccountID: "acc_1", AmountUsdCents: int64(held+b.N+1) * 100})
	mk := func(n int) ServerOrder {
		o := testOrder(n, "vps-1")
		o.Create.CPUOvercommit = 4
		return o
	}
	for i := 0; i < held; i++ {
		apply(CmdServerOrder, mk(1_000_000+i))
	}
	b.ResetTimer()
	cpu0 := proccpu.Self()
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
