package dispatch

import (
	"context"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/fsmtest"
	"github.com/hostplane/hostplane/coordinator/internal/session"
	"github.com/hostplane/hostplane/internal/clock"
)

// fixedClock is a wall clock that stays at t.
type fixedClock struct {
	clock.Real
	t time.Time
}

func (c fixedClock) Now() time.Time { return c.t }

// TestDeadlineFallsDueOnTheClusterClock: an action's deadline is set on the
// cluster's clock (the FSM's command time plus the deadline). On a leader
// whose wall clock is 3 h behind the cluster's (the action opened by a
// leader whose clock was right, past its deadline there), the pending action
// of a node that is not connected fails at the cluster's time, not 3 h
// later when this leader's wall clock passes the deadline.
func TestDeadlineFallsDueOnTheClusterClock(t *testing.T) {
	f, err := fsm.Open(filepath.Join(t.TempDir(), "fsm.db"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	cluster := time.Now().UTC()
	opened := cluster.Add(-2 * time.Hour)
	var idx uint64
	apply := func(ct fsm.CommandType, p any) {
		t.Helper()
		env, err := fsm.NewEnvelope(ct, opened, p)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := json.Marshal(env)
		idx++
		if res := f.Apply(&raft.Log{Index: idx, Type: raft.LogCommand, Data: data}).(*fsm.Result); res.Err != nil {
			t.Fatalf("apply %d: %v", ct, res.Err)
		}
	}
	apply(fsm.CmdAccountCreate, fsm.AccountCreate{ID: "acc_1", Email: "a@example.com", Name: "A", Country: "TR"})
	apply(fsm.CmdNodeCAInit, fsm.NodeCAInit{CertDER: []byte{1}, SealedKey: "v1.x", Fingerprint: "fp"})
	apply(fsm.CmdNodeTokenCreate, fsm.NodeTokenCreate{ID: "jt_1", Hash: "h1", ExpiresAt: opened.Add(time.Hour)})
	apply(fsm.CmdNodeEnrol, fsm.NodeEnrol{TokenID: "jt_1", TokenHash: "h1", NodeID: "hv-gone", CertSerial: "s1", CertNotAfter: cluster.Add(24 * time.Hour)})
	sc := fsmtest.ServerCreate("acc_1", "hv-gone", opened) // deadline: opened + 1 h, an hour before cluster
	apply(fsm.CmdServerCreate, sc)
	wall := fixedClock{t: cluster.Add(-3 * time.Hour)} // this leader's clock: before the deadline
	run := func(now func() time.Time) []fsm.ActionFinish {
		var got []fsm.ActionFinish
		d := New(Deps{State: f, Clock: wall, Now: now, Sessions: func() *session.Server { return nil }, ActionDeadline: time.Hour,
			Propose: func(_ context.Context, ct fsm.CommandType, p any) (*fsm.Result, error) {
				if ct == fsm.CmdActionsFinished {
					got = append(got, p.(fsm.ActionsFinished).Results...)
				}
				return &fsm.Result{}, nil
			}})
		d.leadStart = wall.Now()
		d.scan(context.Background())
		return got
	}
	if got := run(nil); len(got) != 0 {
		t.Fatalf("on the wall clock alone (before its deadline) the action failed: %+v", got)
	}
	got := run(func() time.Time { return cluster })
	if len(got) != 1 || got[0].ID != sc.Action.ID || got[0].ErrorCode == "" {
		t.Fatalf("at the cluster's time, an hour past the deadline: failed %+v, want %s failed at its deadline", got, sc.Action.ID)
	}
}
