package fsm

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// BenchmarkApplyTicketBatch applies group commits of 32 ticket creations, as
// the leader's batcher proposes them under load and as every replica applies
// them: the FSM's share of the replicated write path (decoding, the ticket,
// its list view, the outbox event, the counter). One op is one ticket.
func BenchmarkApplyTicketBatch(b *testing.B) {
	const perBatch = 32
	f := open(b, filepath.Join(b.TempDir(), "f.db"))
	defer f.Close()
	f.ApplyBatch([]*raft.Log{logAt(b, 1, CmdAccountCreate, t0, AccountCreate{ID: "acc_1", Email: "a@x.io", Name: "a", Country: "TR"})})
	batches := make([][]byte, (b.N+perBatch-1)/perBatch)
	for i := range batches {
		cmds := make([][]byte, perBatch)
		for j := range cmds {
			n := i*perBatch + j
			env, _ := NewEnvelope(CmdTicketCreate, t0.Add(time.Duration(n)*time.Millisecond), TicketCreate{
				ID: fmt.Sprintf("tkt_%026d", n), AccountID: "acc_1", MessageID: fmt.Sprintf("msg_%026d", n),
				Subject: "bench", Message: "benchmark ticket body", Department: "technical", Priority: "low", PerAccountNumber: true,
			})
			cmds[j], _ = env.Encode()
		}
		batches[i] = EncodeBatch(t0, cmds)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i, data := range batches {
		out := f.ApplyBatch([]*raft.Log{{Index: uint64(i + 2), Term: 1, Type: raft.LogCommand, Data: data}})
		if r, ok := out[0].(BatchResult); !ok || len(r) != perBatch || r[0].Err != nil {
			b.Fatalf("batch %d: %v", i, out[0])
		}
	}
}
