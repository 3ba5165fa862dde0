package httpapi

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/raftnode"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
)

// faultyApply is the real single-node Raft member with one fault injected
// into the next usage flush's proposal: refused before it reaches the log
// (as a coordinator that no longer leads refuses it), or committed with its
// answer lost (as an apply timeout, or a leader deposed after it appended
// the entry, leave it). deposed makes the member answer as one that no
// longer leads, whose last proposal was in the term before the one its FSM
// applies now (a later leader's).
type faultyApply struct {
	raftnode.Cluster
	mu      sync.Mutex
	fault   string // "", "refuse", "lose-answer"
	deposed bool
	usage   []fsm.CommandType // the usage flushes' command types proposed
}

func (f *faultyApply) inject(fault string) {
	f.mu.Lock()
	f.fault = fault
	f.mu.Unlock()
}

func (f *faultyApply) depose(d bool) {
	f.mu.Lock()
	f.deposed = d
	f.mu.Unlock()
}

func (f *faultyApply) IsLeader() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return !f.deposed && f.Cluster.IsLeader()
}

func (f *faultyApply) Term() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.deposed {
		return f.Cluster.Term() - 1
	}
	return f.Cluster.Term()
}

func (f *faultyApply) Apply(ctx context.Context, env *fsm.Envelope) (*fsm.Result, error) {
	f.mu.Lock()
	fault := ""
	if env.Type == fsm.CmdKeyUsage || env.Type == fsm.CmdKeyUsageFlush {
		fault, f.fault = f.fault, ""
		f.usage = append(f.usage, env.Type)
	}
	f.mu.Unlock()
	switch fault {
	case "refuse":
		return nil, raftnode.ErrNotLeader
	case "lose-answer":
		if _, err := f.Cluster.Apply(ctx, env); err != nil {
			return nil, err
		}
		return nil, context.DeadlineExceeded
	}
	return f.Cluster.Apply(ctx, env)
}

// usageAPI is newWHAPI at semantics level, its Raft member wrapped in
// faultyApply.
func usageAPI(t *testing.T, level uint16) (*whAPI, *faultyApply) {
	w := newWHAPI(t)
	w.apply(fsm.CmdClusterLevel, fsm.ClusterLevel{Level: level})
	f := &faultyApply{Cluster: w.a.raft}
	w.a.raft = f
	return w, f
}

// usageKey makes an account and a key; it returns the key's id and secret.
func usageKey(w *whAPI) (string, string) {
	w.t.Helper()
	return w.addKey(w.newAccount(), fsm.KeyCreate{Scopes: []string{api.ScopeAccountRead}})
}

// useKey makes n requests with key, each recorded as a use.
func useKey(w *whAPI, key string, n int) {
	w.t.Helper()
	for range n {
		if st, body := w.do(key, "GET", "/v1/account", ""); st != 200 {
			w.t.Fatalf("GET /v1/account: %d %v", st, body)
		}
	}
}

// keyUses is what the replicated state holds of key id's use: its use count,
// last use and the number of usage log entries.
func keyUses(w *whAPI, id string) (int64, time.Time, int) {
	w.t.Helper()
	var k api.KeyInfo
	var log []api.KeyUsage
	if err := w.a.state.Read(func(r store.ReadTx) (err error) {
		if k, err = r.Key(id); err != nil {
			return err
		}
		log, err = r.KeyUsage(id, 1000)
		return err
	}); err != nil {
		w.t.Fatal(err)
	}
	var last time.Time
	if k.LastUsedAt != nil {
		last = *k.LastUsedAt
	}
	return k.UseCount, last, len(log)
}

// flushOK flushes and fails the test on an error.
func flushOK(w *whAPI, what string) {
	w.t.Helper()
	if err := w.a.FlushUsage(context.Background()); err != nil {
		w.t.Fatalf("%s: %v", what, err)
	}
}

// flushFails is a flush whose proposal meets fault (faultyApply's): it must
// report an error. what names the flush in a failure.
func flushFails(w *whAPI, f *faultyApply, fault, what string) {
	w.t.Helper()
	f.inject(fault)
	if err := w.a.FlushUsage(context.Background()); err == nil {
		w.t.Fatalf("%s reported no error", what)
	}
}

// otherLeaderFlush writes what another coordinator (n2), leading in a later
// term, flushes: n uses of key id, one logged.
func otherLeaderFlush(w *whAPI, id string, n int64) {
	w.t.Helper()
	now := time.Now().UTC()
	w.apply(fsm.CmdKeyUsageFlush, fsm.KeyUsageFlush{By: "n2", Term: w.node.Term() + 1, Seq: 1, Keys: []fsm.KeyUsageBatch{{
		KeyID: id, LastUsedAt: now, LastUsedIP: "192.0.2.2", Count: n,
		Entries: []fsm.KeyUsageEntry{{At: now, Method: "GET", Path: "/v1/account", Status: 200, IP: "192.0.2.2"}},
	}}})
}

// TestUsageFlushKeepsAFailedBatch: usage flushes whose proposals fail
// (refused: no leader) lose nothing; the next flush that succeeds writes
// the uses recorded before all of them, and the newest use's time.
func TestUsageFlushKeepsAFailedBatch(t *testing.T) {
	w, f := usageAPI(t, fsm.MaxLevel)
	id, key := usageKey(w)

	useKey(w, key, 2)
	flushFails(w, f, "refuse", "the flush whose proposal was refused")
	useKey(w, key, 3)
	flushFails(w, f, "refuse", "the second flush, refused") // the kept flush's second proposal fails too
	before := time.Now()
	useKey(w, key, 1)
	flushOK(w, "third flush")
	if n, last, logged := keyUses(w, id); n != 6 || logged != 6 || last.Before(before.Truncate(time.Second)) {
		t.Errorf("after two refused flushes and a written one: use_count %d, %d usage log entries, last_used_at %v; want 6, 6, the newest use (at or after %v)", n, logged, last, before)
	}
}

// TestUsageFlushCountsABatchOnce: a flush whose proposal committed but
// whose answer was lost (a timeout) fails to its caller; proposed again, it
// must not write that batch's uses a second time.
func TestUsageFlushCountsABatchOnce(t *testing.T) {
	w, f := usageAPI(t, fsm.MaxLevel)
	id, key := usageKey(w)

	useKey(w, key, 2)
	f.inject("lose-answer")
	if err := w.a.FlushUsage(context.Background()); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("the flush whose answer was lost: %v, want the timeout", err)
	}
	useKey(w, key, 1)
	for range 2 {
		flushOK(w, "later flush")
	}
	if n, _, logged := keyUses(w, id); n != 3 || logged != 3 {
		t.Errorf("after a flush whose answer was lost and a written one: use_count %d, %d usage log entries; want 3, 3", n, logged)
	}
}

// TestUsageFlushAcrossALeaderChange: between a failed flush and its next
// proposal another coordinator led and wrote its own flush of the same key
// (a later term's); the failed flush is then written if it was not (the
// other's later flush does not hide it), once if it was.
func TestUsageFlushAcrossALeaderChange(t *testing.T) {
	for _, c := range []struct {
		fault string
		why   string
	}{
		{"refuse", "a flush refused before the log"},
		{"lose-answer", "a flush committed with its answer lost"},
	} {
		t.Run(c.fault, func(t *testing.T) {
			w, f := usageAPI(t, fsm.MaxLevel)
			id, key := usageKey(w)
			useKey(w, key, 2)
			flushFails(w, f, c.fault, c.why)
			otherLeaderFlush(w, id, 1)
			useKey(w, key, 1)
			flushOK(w, "the flush when this coordinator leads again")
			flushOK(w, "the next flush")
			if n, _, logged := keyUses(w, id); n != 4 || logged != 4 {
				t.Errorf("%s, another leader's flush of 1 use, then 1 use: use_count %d, %d usage log entries; want 4, 4", c.why, n, logged)
			}
		})
	}
}

// TestUsageFlushLeftByADeposedLeader: a leader whose flush failed stops
// leading; once its FSM applies an entry of a later term (the new leader's)
// the flush's fate is settled, and what it ships to the new leader holds
// the flush's uses if it was not written, and not if it was.
func TestUsageFlushLeftByADeposedLeader(t *testing.T) {
	for _, c := range []struct {
		fault string
		want  int64 // the flush's uses shipped
	}{
		{"refuse", 2},
		{"lose-answer", 0},
	} {
		t.Run(c.fault, func(t *testing.T) {
			w, f := usageAPI(t, fsm.MaxLevel)
			w.a.cfg.ClusterSecret = "s" // ships; no leader address is known, so what it would ship is kept
			id, key := usageKey(w)
			useKey(w, key, 2)
			f.depose(true)
			flushFails(w, f, c.fault, "the failed flush")
			otherLeaderFlush(w, id, 1) // the new leader's entry, applied here
			if n := shipped(w); n != c.want {
				t.Errorf("%s: the deposed leader ships %d uses, want %d", c.fault, n, c.want)
			}
			if n, _, _ := keyUses(w, id); n != 1+2-c.want {
				t.Errorf("%s: use_count %d, want %d", c.fault, n, 1+2-c.want)
			}
		})
	}
}

// TestUsageFlushBelowItsLevel: while the cluster is below
// fsm.LevelUsageFlush (a coordinator of the release before may apply the
// log, and would skip a CmdKeyUsageFlush as unknown) the leader flushes
// CmdKeyUsage, as that release does, and one whose proposal fails is
// dropped, as before: proposed again, it could be counted twice.
func TestUsageFlushBelowItsLevel(t *testing.T) {
	w, f := usageAPI(t, fsm.LevelUsageFlush-1)
	id, key := usageKey(w)
	useKey(w, key, 2)
	flushFails(w, f, "refuse", "the refused flush")
	useKey(w, key, 1)
	flushOK(w, "the next flush")
	flushOK(w, "an empty flush")
	if n, _, logged := keyUses(w, id); n != 1 || logged != 1 {
		t.Errorf("use_count %d, %d usage log entries; want 1, 1 (the refused flush dropped)", n, logged)
	}
	if len(f.usage) != 2 || f.usage[0] != fsm.CmdKeyUsage || f.usage[1] != fsm.CmdKeyUsage {
		t.Errorf("usage flushes proposed as %v, want two CmdKeyUsage (%d)", f.usage, fsm.CmdKeyUsage)
	}
}
