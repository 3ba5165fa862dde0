package fsm

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
	bolt "go.etcd.io/bbolt"
)

// replyRig is one FSM at a semantics level holding acc_1's ticket tkt_1
// (one message), applying one command per log entry a second apart.
type replyRig struct {
	t   *testing.T
	f   *FSM
	idx uint64
	at  time.Time
}

func newReplyRig(t *testing.T, level uint16) *replyRig {
	t.Helper()
	f := open(t, filepath.Join(t.TempDir(), "f.db"))
	t.Cleanup(func() { f.Close() })
	r := &replyRig{t: t, f: f, at: t0}
	r.must(CmdClusterLevel, ClusterLevel{Level: level}, nil)
	r.must(CmdAccountCreate, AccountCreate{ID: "acc_1", Email: "a@x.io", Name: "a", Country: "TR"}, nil)
	r.must(CmdTicketCreate, TicketCreate{ID: "tkt_1", AccountID: "acc_1", MessageID: "msg_0", Subject: "a <subject> & more", Message: "first",
		Department: "technical", Priority: "low", PerAccountNumber: true}, nil)
	if got := f.ClusterLevel(); got != max(level, 1) {
		t.Fatalf("cluster level %d, want %d", got, level)
	}
	return r
}

func (r *replyRig) apply(typ CommandType, p any, idem *IdemRequest) *Result {
	r.t.Helper()
	r.idx++
	r.at = r.at.Add(time.Second + 123456789*time.Nanosecond)
	env, err := NewEnvelope(typ, r.at, p)
	if err != nil {
		r.t.Fatal(err)
	}
	env.Idem = idem
	raw, _ := env.Encode()
	return r.f.ApplyBatch([]*raft.Log{{Index: r.idx, Term: 1, Type: raft.LogCommand, Data: raw}})[0].(*Result)
}

func (r *replyRig) must(typ CommandType, p any, idem *IdemRequest) *Result {
	r.t.Helper()
	res := r.apply(typ, p, idem)
	if res.Err != nil {
		r.t.Fatalf("command %d: %v", typ, res.Err)
	}
	return res
}

// replyIdem is the Idempotency-Key of customer reply n.
func replyIdem(n int) *IdemRequest {
	return &IdemRequest{Scope: fmt.Sprintf("key_1/reply-%d", n), ReqHash: fmt.Sprintf("%064d", n), Status: 201, ExpiresAt: t0.Add(24 * time.Hour)}
}

// reply applies customer reply n with its key and returns the answer's
// bytes as POST /v1/tickets/{id}/reply writes them (ticketAnswer:
// EncodeTicket of the command's value).
func (r *replyRig) reply(n int, body string) []byte {
	r.t.Helper()
	res := r.must(CmdTicketReply, TicketReply{TicketID: "tkt_1", AccountID: "acc_1", MessageID: fmt.Sprintf("msg_%d", n+1), Body: body}, replyIdem(n))
	if res.Replayed != nil {
		r.t.Fatalf("reply %d was replayed", n)
	}
	t, ok := res.Value.(api.Ticket)
	if !ok {
		r.t.Fatalf("reply %d answered %T", n, res.Value)
	}
	raw, ok := EncodeTicket(&t)
	if !ok {
		r.t.Fatalf("reply %d: EncodeTicket gave up", n)
	}
	return raw
}

// replays checks that reply n's key answers first, byte for byte, through
// both replays: the FSM's (the command sent again) and the read before
// proposing (httpapi.withIdempotency: the stored record, resolved).
func (r *replyRig) replays(n int, first []byte, when string) {
	r.t.Helper()
	res := r.apply(CmdTicketReply, TicketReply{TicketID: "tkt_1", AccountID: "acc_1", MessageID: "msg_again", Body: "again"}, replyIdem(n))
	if res.Err != nil || res.Replayed == nil {
		r.t.Fatalf("%s: reply %d sent again: %+v", when, n, res)
	}
	if res.Replayed.Status != 201 || string(res.Replayed.Body) != string(first) {
		r.t.Fatalf("%s: the FSM's replay of reply %d:\n%d %s\nwant 201 %s", when, n, res.Replayed.Status, res.Replayed.Body, first)
	}
	rec := readOne(r.t, r.f, func(rt store.ReadTx) (store.IdemRecord, error) {
		rec, err := rt.Idempotency(replyIdem(n).Scope)
		if err != nil {
			return rec, err
		}
		return ResolveIdem(rt, rec)
	})
	if rec.Status != 201 || string(rec.Body) != string(first) {
		r.t.Fatalf("%s: the read replay of reply %d:\n%d %s\nwant 201 %s", when, n, rec.Status, rec.Body, first)
	}
}

// idemBytes is the size of the idempotency records (keys and values).
func (r *replyRig) idemBytes() (n int) {
	_ = r.f.View(func(tx *bolt.Tx) error {
		return tx.Bucket(store.BucketIdempotency).ForEach(func(k, v []byte) error { n += len(k) + len(v); return nil })
	})
	return n
}

func (r *replyRig) record(n int) store.IdemRecord {
	return readOne(r.t, r.f, func(rt store.ReadTx) (store.IdemRecord, error) { return rt.Idempotency(replyIdem(n).Scope) })
}

// TestTicketReplyIdemRecordsBounded: at LevelTicketReplyIdem the records of
// a thread of 199 customer replies of 4 KiB (BenchmarkTicketReplyIdemRecords'
// thread, 111.6 MB of records with the answers kept whole) total under
// 100 KB, and each key still answers its first answer byte for byte.
func TestTicketReplyIdemRecordsBounded(t *testing.T) {
	r := newReplyRig(t, LevelTicketReplyIdem)
	body := strings.Repeat("x", 4096)
	first := map[int][]byte{}
	for n := range 199 {
		a := r.reply(n, body)
		if n == 0 || n == 99 || n == 198 {
			first[n] = a
		}
	}
	got := r.idemBytes()
	t.Logf("199 replies of 4 KiB: %d bytes of idempotency records (%d per reply)", got, got/199)
	if got >= 100_000 {
		t.Fatalf("199 replies of 4 KiB stored %d bytes of idempotency records, want < 100000", got)
	}
	for n, a := range first {
		r.replays(n, a, "after 199 replies")
	}
}

// TestTicketReplyIdemReplayExact: at LevelTicketReplyIdem a reply's record
// keeps no body, and its key answers the first answer byte for byte after
// what changes the ticket since: later customer and staff replies, a close,
// an operator's status change, a reply that reopens it. Bodies that JSON
// escapes (<, &, U+2028, invalid UTF-8) come back escaped alike.
func TestTicketReplyIdemReplayExact(t *testing.T) {
	r := newReplyRig(t, LevelTicketReplyIdem)
	first := map[int][]byte{
		0: r.reply(0, "<b>hello</b> & \u2028 \xff é"),
		1: r.reply(1, "second"),
	}
	for n := range first {
		rec := r.record(n)
		if rec.Body != nil || rec.Ticket == nil {
			t.Fatalf("record of reply %d at level %d: body %d bytes, ticket %+v; want no body", n, LevelTicketReplyIdem, len(rec.Body), rec.Ticket)
		}
	}
	check := func(when string) {
		t.Helper()
		for n, a := range first {
			r.replays(n, a, when)
		}
	}
	check("at once")
	r.must(CmdTicketReply, TicketReply{TicketID: "tkt_1", MessageID: "msg_s1", Staff: true, StaffName: "Ann", Body: "staff <answer>"}, nil)
	check("after a staff reply")
	first[2] = r.reply(2, "third")
	check("after another customer reply")
	r.must(CmdTicketClose, TicketClose{TicketID: "tkt_1", AccountID: "acc_1"}, nil)
	check("after a close")
	r.must(CmdTicketStatus, TicketStatus{TicketID: "tkt_1", Status: api.TicketOnHold}, nil)
	check("after a status change")
	first[3] = r.reply(3, "reopens")
	check("after a reply that reopens it")
	var tk api.Ticket
	if err := json.Unmarshal(first[0], &tk); err != nil || len(tk.Messages) != 2 || tk.Status != api.TicketCustomerReply {
		t.Fatalf("first answer of reply 0: %d messages, %q (%v)", len(tk.Messages), tk.Status, err)
	}
}

// TestTicketReplyIdemBelowLevel: below LevelTicketReplyIdem the record is
// what it was: the whole answer as its body, nothing to resolve.
func TestTicketReplyIdemBelowLevel(t *testing.T) {
	r := newReplyRig(t, LevelTicketReplyIdem-1)
	first := r.reply(0, strings.Repeat("y", 4096))
	rec := r.record(0)
	if rec.Ticket != nil || string(rec.Body) != string(first) {
		t.Fatalf("record at level %d: ticket %+v, body %d bytes; want the whole answer (%d bytes)", LevelTicketReplyIdem-1, rec.Ticket, len(rec.Body), len(first))
	}
	r.reply(1, "more")
	r.replays(0, first, "after another reply")
	if got := r.idemBytes(); got < 2*4096 {
		t.Fatalf("records of two replies at level %d: %d bytes, want the whole answers", LevelTicketReplyIdem-1, got)
	}
}

// TestTicketReplyIdemThreadShorter: a record whose ticket holds fewer
// messages than it counts (which append-only threads never do) fails both
// replays with an internal error, not a wrong answer nor a business error
// (which would be a 4xx).
func TestTicketReplyIdemThreadShorter(t *testing.T) {
	r := newReplyRig(t, LevelTicketReplyIdem)
	first := r.reply(0, "one")
	r.reply(1, "two")
	key := store.OwnedKey("acc_1", "tkt_1")
	if err := r.f.db.Update(func(tx *bolt.Tx) error {
		var tk api.Ticket
		if err := store.GetJSON(tx, store.BucketTickets, key, &tk); err != nil {
			return err
		}
		tk.Messages = tk.Messages[:2]
		return store.PutJSON(tx, store.BucketTickets, key, tk)
	}); err != nil {
		t.Fatal(err)
	}
	res := r.apply(CmdTicketReply, TicketReply{TicketID: "tkt_1", AccountID: "acc_1", MessageID: "msg_again", Body: "two"}, replyIdem(1))
	if res.Err == nil || res.Replayed != nil {
		t.Fatalf("replay of a record counting 3 messages over a thread of 2: %+v", res)
	}
	for _, e := range []error{ErrNotFound, ErrInvalid, ErrConflict, ErrIdemMismatch} {
		if errors.Is(res.Err, e) {
			t.Fatalf("replay over a short thread: %v is a business error (%v)", res.Err, e)
		}
	}
	err := r.f.Read(func(rt store.ReadTx) error {
		rec, err := rt.Idempotency(replyIdem(1).Scope)
		if err != nil {
			return err
		}
		_, err = ResolveIdem(rt, rec)
		return err
	})
	if err == nil || errors.Is(err, store.ErrNotFound) {
		t.Fatalf("read replay over a short thread: %v", err)
	}
	// The record of reply 0 (2 messages) still resolves.
	r.replays(0, first, "after the thread was cut")
}
