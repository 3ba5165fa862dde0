package httpapi

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/auth"
	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/ids"
	"github.com/hostplane/hostplane/coordinator/internal/raftnode"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
)

// faultyApply is the real single-node Raft member with one fault injected
// into the next usage flush's proposal: refused before it reaches the log
// (as a coordinator that no longer leads refuses it), or committed with its
// answer lost (as an apply timeout, or a leader deposed after it appended
// the entry, leave it).
type faultyApply struct {
	raftnode.Cluster
	mu    sync.Mutex
	fault string // "", "refuse", "lose-answer"
}

func (f *faultyApply) inject(fault string) {
	f.mu.Lock()
	f.fault = fault
	f.mu.Unlock()
}

func (f *faultyApply) Apply(ctx context.Context, env *fsm.Envelope) (*fsm.Result, error) {
	f.mu.Lock()
	fault := ""
	if env.Type == fsm.CmdKeyUsage {
		fault, f.fault = f.fault, ""
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

// usageKey makes an account and a key; it returns the key's id and secret.
func usageKey(w *whAPI) (string, string) {
	w.t.Helper()
	now := time.Now()
	acc := ids.New("acc", now)
	w.apply(fsm.CmdAccountCreate, fsm.AccountCreate{ID: acc, Email: acc + "@example.com", Name: "x", Country: "TR"})
	plain, hash, prefix := auth.NewKey("snc_")
	id := ids.New("key", now)
	w.apply(fsm.CmdKeyCreate, fsm.KeyCreate{ID: id, AccountID: acc, Name: "k", Hash: hash, Prefix: prefix, Scopes: []string{api.ScopeAccountRead}})
	return id, plain
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

// TestUsageFlushKeepsAFailedBatch: usage flushes whose proposals fail
// (refused: no leader) lose nothing; the next flush that succeeds writes
// the uses recorded before all of them, and the newest use's time.
func TestUsageFlushKeepsAFailedBatch(t *testing.T) {
	w := newWHAPI(t)
	f := &faultyApply{Cluster: w.a.raft}
	w.a.raft = f
	id, key := usageKey(w)

	useKey(w, key, 2)
	f.inject("refuse")
	if err := w.a.FlushUsage(context.Background()); err == nil {
		t.Fatal("the flush whose proposal was refused reported no error")
	}
	useKey(w, key, 3)
	f.inject("refuse") // the kept flush's second proposal fails too
	if err := w.a.FlushUsage(context.Background()); err == nil {
		t.Fatal("the second flush, refused, reported no error")
	}
	before := time.Now()
	useKey(w, key, 1)
	if err := w.a.FlushUsage(context.Background()); err != nil {
		t.Fatalf("second flush: %v", err)
	}
	if n, last, logged := keyUses(w, id); n != 6 || logged != 6 || last.Before(before.Truncate(time.Second)) {
		t.Errorf("after two refused flushes and a written one: use_count %d, %d usage log entries, last_used_at %v; want 6, 6, the newest use (at or after %v)", n, logged, last, before)
	}
}

// TestUsageFlushCountsABatchOnce: a flush whose proposal committed but
// whose answer was lost (a timeout) fails to its caller; the next flush
// must not write that batch's uses a second time.
func TestUsageFlushCountsABatchOnce(t *testing.T) {
	w := newWHAPI(t)
	f := &faultyApply{Cluster: w.a.raft}
	w.a.raft = f
	id, key := usageKey(w)

	useKey(w, key, 2)
	f.inject("lose-answer")
	if err := w.a.FlushUsage(context.Background()); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("the flush whose answer was lost: %v, want the timeout", err)
	}
	useKey(w, key, 1)
	for range 2 {
		if err := w.a.FlushUsage(context.Background()); err != nil {
			t.Fatalf("later flush: %v", err)
		}
	}
	if n, _, logged := keyUses(w, id); n != 3 || logged != 3 {
		t.Errorf("after a flush whose answer was lost and a written one: use_count %d, %d usage log entries; want 3, 3", n, logged)
	}
}
