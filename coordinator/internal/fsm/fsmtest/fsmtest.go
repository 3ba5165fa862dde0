// Package fsmtest feeds commands to a real FSM as Raft would (one replica,
// no Raft between), for the tests of packages that propose commands.
package fsmtest

import (
	"context"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
)

// Replica applies each command to FSM as the next log entry (indexes 1, 2,
// …); it is safe for concurrent use.
type Replica struct {
	FSM *fsm.FSM

	mu    sync.Mutex
	index uint64
}

// Open opens an FSM in a temporary directory of t, closed when the test
// ends, as a Replica.
func Open(t testing.TB) *Replica {
	t.Helper()
	f, err := fsm.Open(filepath.Join(t.TempDir(), "fsm.db"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return &Replica{FSM: f}
}

// Apply applies env as the next log entry. The result is nil when the FSM
// passed the entry over (an index it has applied already).
func (r *Replica) Apply(env *fsm.Envelope) (*fsm.Result, error) {
	data, err := env.Encode()
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.index++
	res, _ := r.FSM.Apply(&raft.Log{Index: r.index, Type: raft.LogCommand, Data: data}).(*fsm.Result)
	return res, nil
}

// Propose applies a command of type t with payload p, stamped now, and
// returns the command's own error.
func (r *Replica) Propose(_ context.Context, t fsm.CommandType, p any) error {
	env, err := fsm.NewEnvelope(t, time.Now(), p)
	if err != nil {
		return err
	}
	res, err := r.Apply(env)
	if err != nil || res == nil {
		return err
	}
	return res.Err
}

// Commit applies env as the next log entry and returns its result, with the
// command's own error: a leader's apply after Raft commits, as a package
// that proposes envelopes takes it.
func (r *Replica) Commit(_ context.Context, env *fsm.Envelope) (*fsm.Result, error) {
	res, err := r.Apply(env)
	if err != nil || res == nil {
		return res, err
	}
	return res, res.Err
}

// MustAt applies a command of type typ with payload p stamped at (the
// cluster's time it carries, which FSM.AppliedAt follows); an
// error or a refusal fails t.
func (r *Replica) MustAt(t testing.TB, at time.Time, typ fsm.CommandType, p any) {
	t.Helper()
	env, err := fsm.NewEnvelope(typ, at, p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Commit(context.Background(), env); err != nil {
		t.Fatalf("apply %d: %v", typ, err)
	}
}
