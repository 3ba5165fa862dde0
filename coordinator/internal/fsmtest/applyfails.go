package fsmtest

import (
	"context"
	"encoding/json"
	"sync/atomic"

	"github.com/hashicorp/raft"
	"github.com/hostplane/hostplane/coordinator/internal/fsm"
)

// Apply proposes a command and waits for it to apply (webhook.Applier's
// shape; a func literal of it is assignable to that type).
type Apply = func(ctx context.Context, env *fsm.Envelope) (*fsm.Result, error)

// FirstAttemptsAnswerFails wraps apply so that the first WebhookAttempts
// command carrying attempts is applied (committed) and then answered
// raft.ErrLeadershipLost, as Raft answers an entry replicated before
// leadership was lost, so the dispatcher proposes the same batch again.
// proposed counts the WebhookAttempts commands with attempts that applied.
func FirstAttemptsAnswerFails(apply Apply, proposed *atomic.Int32) Apply {
	var failed atomic.Bool
	return func(ctx context.Context, env *fsm.Envelope) (*fsm.Result, error) {
		res, err := apply(ctx, env)
		if err != nil || env.Type != fsm.CmdWebhookAttempts {
			return res, err
		}
		var p fsm.WebhookAttempts
		if json.Unmarshal(env.Data, &p) != nil || len(p.Attempts) == 0 {
			return res, err
		}
		proposed.Add(1)
		if failed.CompareAndSwap(false, true) {
			return nil, raft.ErrLeadershipLost // committed, answered as failed
		}
		return res, err
	}
}
