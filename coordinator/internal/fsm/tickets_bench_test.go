package fsm

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/hostplane/hostplane/coordinator/internal/ids"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	bolt "go.etcd.io/bbolt"
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

// BenchmarkTicketReplyIdemRecords applies a thread of 199 customer replies
// of 4 KiB, each with an Idempotency-Key, as POST /v1/tickets/{id}/reply
// proposes them (a thread holds at most 200 messages), below and at
// LevelTicketReplyIdem. It reports the records' bytes against the thread's
// (idem-bytes/op, thread-bytes/op): below the level each record holds its
// answer, the whole thread so far, and the records grow as the square of
// the thread; at it each record is a few hundred bytes. One op is one
// thread. Run it with -benchtime 1x.
func BenchmarkTicketReplyIdemRecords(b *testing.B) {
	for _, level := range []uint16{LevelTicketReplyIdem - 1, LevelTicketReplyIdem} {
		b.Run(fmt.Sprintf("level-%d", level), func(b *testing.B) { benchTicketReplyIdemRecords(b, level) })
	}
}

func benchTicketReplyIdemRecords(b *testing.B, level uint16) {
	const replies, size = 199, 4096
	var idem, thread int
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		f := open(b, filepath.Join(b.TempDir(), "f.db"))
		f.ApplyBatch([]*raft.Log{logAt(b, 1, CmdClusterLevel, t0, ClusterLevel{Level: level}),
			logAt(b, 2, CmdAccountCreate, t0, AccountCreate{ID: "acc_1", Email: "a@x.io", Name: "a", Country: "TR"}),
			logAt(b, 3, CmdTicketCreate, t0, TicketCreate{ID: "tkt_1", AccountID: "acc_1", MessageID: "msg_0", Subject: "s", Message: "m",
				Department: "technical", Priority: "low", PerAccountNumber: true})})
		body := strings.Repeat("x", size)
		b.StartTimer()
		for n := 0; n < replies; n++ {
			at := t0.Add(time.Duration(n+1) * time.Second)
			env, err := NewEnvelope(CmdTicketReply, at, TicketReply{TicketID: "tkt_1", AccountID: "acc_1", MessageID: ids.New("msg", at), Body: body})
			if err != nil {
				b.Fatal(err)
			}
			env.Idem = &IdemRequest{Scope: fmt.Sprintf("key_1/reply-%d", n), ReqHash: "h", Status: 201, ExpiresAt: at.Add(24 * time.Hour)}
			raw, _ := env.Encode()
			if r := f.ApplyBatch([]*raft.Log{{Index: uint64(n + 4), Term: 1, Type: raft.LogCommand, Data: raw}})[0].(*Result); r.Err != nil {
				b.Fatalf("reply %d: %v", n, r.Err)
			}
		}
		b.StopTimer()
		idem, thread = 0, 0
		_ = f.View(func(tx *bolt.Tx) error {
			thread = len(tx.Bucket(store.BucketTickets).Get(store.OwnedKey("acc_1", "tkt_1")))
			return tx.Bucket(store.BucketIdempotency).ForEach(func(k, v []byte) error { idem += len(k) + len(v); return nil })
		})
		f.Close()
	}
	b.ReportMetric(float64(idem), "idem-bytes/op")
	b.ReportMetric(float64(thread), "thread-bytes/op")
}
