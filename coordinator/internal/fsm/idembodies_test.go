package fsm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	bolt "go.etcd.io/bbolt"
)

// TestIdemBodiesAtLevel11: the log of TestApplyOrderRecordsUnchanged
// applied at LevelIdemBodies answers every command the same, replays
// included (the same bytes as at level 10), and leaves every record the
// same but the Idempotency-Key records: each keeps its request's hash,
// status and expiry, its body is null and its body_ref names an idem_bodies
// record holding, byte for byte, the body the level-10 record held. Every
// body is referenced once; nothing else is in idem_bodies.
func TestIdemBodiesAtLevel11(t *testing.T) {
	old, cur := applyOrderLog(t, LevelIdemBodies-1), applyOrderLog(t, LevelIdemBodies)
	oldRecs, oldBodies, oldRest := splitIdemDump(t, old)
	curRecs, curBodies, curRest := splitIdemDump(t, cur)
	if line, g, w, same := firstDiff([]byte(strings.Join(curRest, "\n")), []byte(strings.Join(oldRest, "\n"))); !same {
		t.Fatalf("line %d of the level-11 records and results (idempotency apart) differs from level 10's:\n got %s\nwant %s", line, g, w)
	}
	if len(oldBodies) != 0 {
		t.Fatalf("idem_bodies at level 10 holds %d records, want none", len(oldBodies))
	}
	if len(oldRecs) < 20 || len(curRecs) != len(oldRecs) {
		t.Fatalf("%d idempotency records at level 10, %d at level 11; the log sends more than 20 keys", len(oldRecs), len(curRecs))
	}
	used := map[string]bool{}
	for scope, o := range oldRecs {
		c, ok := curRecs[scope]
		if !ok {
			t.Fatalf("no level-11 record under %q", scope)
		}
		if o.Body == nil || o.BodyRef != "" || c.Body != nil || c.BodyRef == "" {
			t.Fatalf("%q: level 10 %+v, level 11 %+v: want the body in the first and a reference in the second", scope, o, c)
		}
		body, ok := curBodies[c.BodyRef]
		if !ok || !bytes.Equal(body, o.Body) || used[c.BodyRef] {
			t.Fatalf("%q: the body under %s (used before: %v) is %q, want level 10's %q", scope, c.BodyRef, used[c.BodyRef], body, o.Body)
		}
		used[c.BodyRef] = true
		o.Body, c.BodyRef = nil, ""
		if fmt.Sprint(o) != fmt.Sprint(c) {
			t.Fatalf("%q: level-11 record %+v, want level 10's %+v", scope, c, o)
		}
	}
	if len(used) != len(curBodies) {
		t.Fatalf("idem_bodies holds %d bodies, the records reference %d", len(curBodies), len(used))
	}
}

// splitIdemDump splits applyOrderLog's lines into the idempotency records
// (by scope), the idem_bodies records (by hex key, as a BodyRef names it)
// and every other line.
func splitIdemDump(t *testing.T, dump []byte) (map[string]store.IdemRecord, map[string][]byte, []string) {
	t.Helper()
	recs, bodies := map[string]store.IdemRecord{}, map[string][]byte{}
	var rest []string
	for _, l := range strings.Split(strings.TrimSuffix(string(dump), "\n"), "\n") {
		bucket, kv, _ := strings.Cut(l, " ")
		if bucket != "idempotency" && bucket != "idem_bodies" {
			rest = append(rest, l)
			continue
		}
		var k, v string
		if _, err := fmt.Sscanf(kv, "%q %q", &k, &v); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		if bucket == "idem_bodies" {
			bodies[fmt.Sprintf("%x", k)] = []byte(v)
			continue
		}
		var rec store.IdemRecord
		if err := json.Unmarshal([]byte(v), &rec); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		recs[k] = rec
	}
	return recs, bodies, rest
}

// TestIdemBodiesUpgradeReplayExpire: across the raise to LevelIdemBodies,
// on a replica restored from a backup of a release before it (no
// idem_bodies bucket), an order and a ticket sent at level 10 and others at
// 11 replay their first answers, byte for byte, through the FSM (the
// command sent again) and as httpapi reads a key (Idempotency then
// ResolveIdem); a snapshot of the state restores with them. A key sent again
// for another request after its record expired (not swept yet) leaves one
// body, the new one; an IdemAnswer writes its answer into the record and
// removes the body; the expiry sweep removes the records and their bodies:
// idem_bodies ends empty.
func TestIdemBodiesUpgradeReplayExpire(t *testing.T) {
	s := newApplyOrderStateOf(t, 8, true, LevelIdemBodies-1)
	var sent []*Envelope
	first := map[string][]byte{} // scope → the first answer's body
	send := func(envs ...*Envelope) {
		t.Helper()
		res := s.f.ApplyBatch([]*raft.Log{s.entry(envs)})[0]
		rs, ok := res.(BatchResult)
		if !ok {
			rs = BatchResult{res.(*Result)}
		}
		for i, r := range rs {
			if r.Err != nil || r.Replayed != nil {
				t.Fatalf("command %d: %+v", i, r)
			}
			body, err := json.Marshal(r.Value)
			if err != nil {
				t.Fatal(err)
			}
			first[envs[i].Idem.Scope] = body
		}
		sent = append(sent, envs...)
	}
	send(s.next("order"), s.next("ticket"))
	s.f = restoredWithout(t, s.f, store.BucketIdemBodies)
	s.applyGroup([]*Envelope{cmd(CmdClusterLevel, ClusterLevel{Level: LevelIdemBodies})})
	send(s.next("order"), s.next("ticket"), s.next("order-addr"))
	send(s.next("order"))
	if n := bucketKeys(t, s.f, store.BucketIdemBodies); n != 4 {
		t.Fatalf("idem_bodies holds %d bodies after 4 commands at level 11", n)
	}
	checkReplays := func(what string) {
		t.Helper()
		for _, e := range sent {
			res := s.f.ApplyBatch([]*raft.Log{s.entry([]*Envelope{e})})[0].(*Result)
			if res.Err != nil || res.Replayed == nil || !bytes.Equal(res.Replayed.Body, first[e.Idem.Scope]) || res.Replayed.Status != e.Idem.Status || res.Replayed.BodyRef != "" {
				t.Fatalf("%s: %q sent again: %+v, want its first answer %s", what, e.Idem.Scope, res, first[e.Idem.Scope])
			}
			rec := readOne(t, s.f, func(r store.ReadTx) (store.IdemRecord, error) {
				rec, err := r.Idempotency(e.Idem.Scope)
				if err != nil {
					return rec, err
				}
				return ResolveIdem(r, rec)
			})
			if !bytes.Equal(rec.Body, first[e.Idem.Scope]) || rec.ReqHash != e.Idem.ReqHash {
				t.Fatalf("%s: %q read as httpapi reads it: %+v, want its first answer %s", what, e.Idem.Scope, rec, first[e.Idem.Scope])
			}
		}
	}
	checkReplays("after the raise")
	var snap bytes.Buffer
	if err := s.f.View(func(tx *bolt.Tx) error { return WriteSnapshot(tx, &snap) }); err != nil {
		t.Fatal(err)
	}
	s.f = restored(t, filepath.Join(t.TempDir(), "restored.db"), snap.Bytes())
	checkReplays("restored from a snapshot")

	// The first order's key (level 10) and the second's (level 11), sent
	// again after their records expired, for another request.
	s.at = s.at.Add(25 * time.Hour)
	for _, e := range []*Envelope{sent[0], sent[2]} {
		again := s.next("order")
		again.Idem.Scope = e.Idem.Scope
		send(again)
	}
	if n := bucketKeys(t, s.f, store.BucketIdemBodies); n != 5 {
		t.Fatalf("idem_bodies holds %d bodies; want 5: the level-10 record's key gains one, the replaced level-11 record's body makes way for the new one's", n)
	}
	// An answer replaced (CmdIdemAnswer) is kept in the record.
	last := sent[len(sent)-1]
	s.applyGroup([]*Envelope{cmd(CmdIdemAnswer, IdemAnswer{Scope: last.Idem.Scope, ReqHash: last.Idem.ReqHash, Status: 200, Body: json.RawMessage(`{"answer":"replaced"}`)})})
	rec := readOne(t, s.f, func(r store.ReadTx) (store.IdemRecord, error) { return r.Idempotency(last.Idem.Scope) })
	if rec.BodyRef != "" || string(rec.Body) != `{"answer":"replaced"}` || rec.Status != 200 {
		t.Fatalf("record after IdemAnswer: %+v", rec)
	}
	if n := bucketKeys(t, s.f, store.BucketIdemBodies); n != 4 {
		t.Fatalf("idem_bodies holds %d bodies after an IdemAnswer, want 4", n)
	}
	res := s.f.ApplyBatch([]*raft.Log{s.entry([]*Envelope{last})})[0].(*Result)
	if res.Replayed == nil || string(res.Replayed.Body) != `{"answer":"replaced"}` {
		t.Fatalf("replay after IdemAnswer: %+v", res)
	}
	// The sweep, a day after the last: every record and body goes.
	s.applyGroup([]*Envelope{cmdAt(CmdIdemExpire, IdemExpire{}, s.at.Add(25*time.Hour))})
	if n, b := bucketKeys(t, s.f, store.BucketIdempotency), bucketKeys(t, s.f, store.BucketIdemBodies); n != 0 || b != 0 {
		t.Fatalf("after the sweep: %d idempotency records, %d bodies; want none", n, b)
	}
}

// cmdAt is cmd at time at.
func cmdAt(typ CommandType, v any, at time.Time) *Envelope {
	e := cmd(typ, v)
	e.At = at
	return e
}

// bucketKeys is how many keys bucket holds in f.
func bucketKeys(t *testing.T, f *FSM, bucket []byte) int {
	t.Helper()
	n := 0
	if err := f.View(func(tx *bolt.Tx) error { n = tx.Bucket(bucket).Stats().KeyN; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestIdemBodiesPages: over a database of 300 orders and tickets, an
// order's commit and a ticket's at level 11 each write their body to
// idem_bodies and a record of at most 250 bytes where the key sorts; the
// records' leaves and the bodies' pages of one group commit of eight are
// fewer pages than the level-10 records' leaves.
func TestIdemBodiesPages(t *testing.T) {
	for _, kind := range []string{"order", "ticket"} {
		pages := map[uint16]pageReport{}
		for _, level := range []uint16{LevelIdemBodies - 1, LevelIdemBodies} {
			s := newApplyOrderStateOf(t, 300, false, level)
			var g []*Envelope
			for range applyOrderBatch {
				g = append(g, s.next(kind))
			}
			pages[level] = measureCommit(t, s.f, s.entry(g))
			t.Logf("%d %ss in one commit at level %d:\n%v", applyOrderBatch, kind, level, pages[level])
			if level >= LevelIdemBodies {
				var size int
				_ = s.f.View(func(tx *bolt.Tx) error {
					size = len(tx.Bucket(store.BucketIdempotency).Get([]byte(g[0].Idem.Scope)))
					return nil
				})
				if size == 0 || size > 250 {
					t.Fatalf("%s's idempotency record at level 11: %d bytes, want at most 250", kind, size)
				}
			}
		}
		p10, p11 := pages[LevelIdemBodies-1], pages[LevelIdemBodies]
		if len(p11.keys["idem_bodies"]) != applyOrderBatch || len(p10.keys["idem_bodies"]) != 0 {
			t.Fatalf("%ss' idem_bodies: level 10 keys %v; level 11 keys %v", kind, p10.keys["idem_bodies"], p11.keys["idem_bodies"])
		}
		if p11.pages["idempotency"]+p11.pages["idem_bodies"] >= p10.pages["idempotency"] {
			t.Fatalf("%ss' idempotency records and bodies: %d + %d pages at level 11, %d at level 10", kind, p11.pages["idempotency"], p11.pages["idem_bodies"], p10.pages["idempotency"])
		}
	}
}

// TestIdemBodyKeyReusedAfterRestore (review25's case): a backup restored
// into a cluster whose Raft log is behind the backup's (cluster restore
// installs it at the cluster's own index) reaches again the indexes the
// backup's bodies were written under. The record written there keeps its
// body in it; the backup's key still replays its own first answer, and
// each record's expiry removes only what it names.
func TestIdemBodyKeyReusedAfterRestore(t *testing.T) {
	s := newApplyOrderStateOf(t, 8, true, LevelIdemBodies)
	s.idx = 1000
	first := s.next("order")
	res := s.f.ApplyBatch([]*raft.Log{s.entry([]*Envelope{first})})[0].(*Result)
	want, _ := json.Marshal(res.Value)
	var snap bytes.Buffer
	if err := s.f.View(func(tx *bolt.Tx) error { return WriteSnapshot(tx, &snap) }); err != nil {
		t.Fatal(err)
	}
	s.f = restored(t, filepath.Join(t.TempDir(), "restored.db"), snap.Bytes())
	s.idx = 1000 // the new cluster's log reaches the same index
	other := s.next("order")
	r := s.f.ApplyBatch([]*raft.Log{s.entry([]*Envelope{other})})[0].(*Result)
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	otherWant, _ := json.Marshal(r.Value)
	rec := readOne(t, s.f, func(r store.ReadTx) (store.IdemRecord, error) { return r.Idempotency(other.Idem.Scope) })
	if rec.BodyRef != "" || !bytes.Equal(rec.Body, otherWant) {
		t.Fatalf("the record written at a reused index: %+v, want its body in it", rec)
	}
	for _, e := range []struct {
		env  *Envelope
		want []byte
	}{{first, want}, {other, otherWant}} {
		again := s.f.ApplyBatch([]*raft.Log{s.entry([]*Envelope{e.env})})[0].(*Result)
		if again.Replayed == nil || !bytes.Equal(again.Replayed.Body, e.want) {
			t.Fatalf("%q sent again after the restore: %+v, want its first answer %s", e.env.Idem.Scope, again, e.want)
		}
	}
	s.applyGroup([]*Envelope{cmdAt(CmdIdemExpire, IdemExpire{}, s.at.Add(25*time.Hour))})
	if n, b := bucketKeys(t, s.f, store.BucketIdempotency), bucketKeys(t, s.f, store.BucketIdemBodies); n != 0 || b != 0 {
		t.Fatalf("after the sweep: %d idempotency records, %d bodies; want none", n, b)
	}
}
