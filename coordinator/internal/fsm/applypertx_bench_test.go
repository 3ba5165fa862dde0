package fsm

import (
	"fmt"
	"testing"

	"github.com/hashicorp/raft"
	"github.com/hostplane/hostplane/internal/proccpu"
)

// BenchmarkApplyPerTx is BenchmarkApplyOrder with more commands per bbolt
// transaction: the same store and commands, group commits of up to
// applyOrderBatch commands, but perTx commands (perTx/applyOrderBatch
// entries, or one entry of perTx when fewer) applied by one FSM.ApplyBatch,
// so one commit. It asks what committing the FSM less often than once per
// Raft batch (etcd commits its backend every 100 ms or 10,000 writes) would
// save per command: cpu-µs/op as BenchmarkApplyOrder's, pages/op the bbolt
// pages written per command, meta page included (the FSM's own count).
//
//	go test ./coordinator/internal/fsm -run '^$' -bench ApplyPerTx -benchtime 4096x
func BenchmarkApplyPerTx(b *testing.B) {
	for _, kind := range []string{"order", "ticket"} {
		for _, perTx := range []int{1, 2, 4, 8, 16, 32, 64, 128, 512} {
			b.Run(fmt.Sprintf("%s/per-tx=%d", kind, perTx), func(b *testing.B) { benchApplyPerTx(b, kind, perTx) })
		}
	}
}

func benchApplyPerTx(b *testing.B, kind string, perTx int) {
	s := newApplyOrderState(b)
	per := min(perTx, applyOrderBatch) // commands per entry
	var batches [][]*raft.Log
	for n := 0; n < b.N; n += perTx {
		var logs []*raft.Log
		for m := n; m < min(n+perTx, b.N); m += per {
			g := make([]*Envelope, min(per, b.N-m))
			for i := range g {
				g[i] = s.next(kind)
			}
			logs = append(logs, s.entry(g))
		}
		batches = append(batches, logs)
	}
	pages0, txs0 := s.f.pages.Load(), s.f.txs.Load()
	b.ResetTimer()
	cpu0 := proccpu.Self()
	for _, logs := range batches {
		for _, out := range s.f.ApplyBatch(logs) {
			checkApplied(out)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64((proccpu.Self()-cpu0).Nanoseconds())/float64(b.N)/1e3, "cpu-µs/op")
	b.ReportMetric(float64(s.f.pages.Load()-pages0)/float64(b.N), "pages/op")
	b.ReportMetric(float64(b.N)/float64(s.f.txs.Load()-txs0), "cmds/tx")
}
