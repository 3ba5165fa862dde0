// Package fsmtest feeds commands to a real FSM as Raft would (one replica,
// no Raft between), for the tests of packages that propose commands.
package fsmtest

import (
	"context"
	"sync"
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
