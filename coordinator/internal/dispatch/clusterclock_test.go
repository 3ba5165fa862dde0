package dispatch

import (
	"context"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	replica "github.com/hostplane/hostplane/coordinator/internal/fsm/fsmtest"
	"github.com/hostplane/hostplane/coordinator/internal/fsmtest"
	"github.com/hostplane/hostplane/coordinator/internal/hlc"
	"github.com/hostplane/hostplane/coordinator/internal/session"
	"github.com/hostplane/hostplane/internal/clock"
)

// fixedClock is a wall clock that stays at t.
type fixedClock struct {
	clock.Real
	t time.Time
}

func (c fixedClock) Now() time.Time { return c.t }

// behindClock is a wall clock running behind the real one by by.
type behindClock struct {
	clock.Real
	by time.Duration
}

func (c behindClock) Now() time.Time { return time.Now().Add(-c.by) }

// pendingOnAGoneNode is an FSM whose entries were all applied at opened: an
// account, a node enrolled and not connected, and a server whose
// provisioning action, pending on that node, is due by deadline.
func pendingOnAGoneNode(t *testing.T, opened, deadline time.Time) (*fsm.FSM, fsm.ServerCreate) {
	t.Helper()
	r := replica.Open(t)
	r.MustAt(t, opened, fsm.CmdAccountCreate, fsm.AccountCreate{ID: "acc_1", Email: "a@example.com", Name: "A", Country: "TR"})
	r.MustAt(t, opened, fsm.CmdNodeCAInit, fsm.NodeCAInit{CertDER: []byte{1}, SealedKey: "v1.x", Fingerprint: "fp"})
	r.MustAt(t, opened, fsm.CmdNodeTokenCreate, fsm.NodeTokenCreate{ID: "jt_1", Hash: "h1", ExpiresAt: opened.Add(time.Hour)})
	r.MustAt(t, opened, fsm.CmdNodeEnrol, fsm.NodeEnrol{TokenID: "jt_1", TokenHash: "h1", NodeID: "hv-gone", CertSerial: "s1", CertNotAfter: opened.Add(26 * time.Hour)})
	sc := fsmtest.ServerCreate("acc_1", "hv-gone", opened)
	sc.Action.Deadline = deadline
	r.MustAt(t, opened, fsm.CmdServerCreate, sc)
	return r.FSM, sc
}

// expireScan runs one scan of a dispatcher on f with wall clock wall and
// cluster clock now (nil: wall's) and returns the actions it failed.
func expireScan(f *fsm.FSM, wall clock.Clock, now func() time.Time) []fsm.ActionFinish {
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

// TestDeadlineFallsDueOnTheClusterClock: an action's deadline is set on the
// cluster's clock (the FSM's command time plus the deadline). On a leader
// whose wall clock is 3 h behind the cluster's (the action opened by a
// leader whose clock was right, past its deadline there), the pending action
// of a node that is not connected fails at the cluster's time, not 3 h
// later when this leader's wall clock passes the deadline.
func TestDeadlineFallsDueOnTheClusterClock(t *testing.T) {
	cluster := time.Now().UTC()
	opened := cluster.Add(-2 * time.Hour)
	f, sc := pendingOnAGoneNode(t, opened, opened.Add(time.Hour)) // an hour before cluster
	wall := fixedClock{t: cluster.Add(-3 * time.Hour)}            // this leader's clock: before the deadline
	if got := expireScan(f, wall, nil); len(got) != 0 {
		t.Fatalf("on the wall clock alone (before its deadline) the action failed: %+v", got)
	}
	got := expireScan(f, wall, func() time.Time { return cluster })
	if len(got) != 1 || got[0].ID != sc.Action.ID || got[0].ErrorCode == "" {
		t.Fatalf("at the cluster's time, an hour past the deadline: failed %+v, want %s failed at its deadline", got, sc.Action.ID)
	}
}

// TestDeadlineFallsDueAfterItsDurationOnALeaderBehind: on a leader whose
// wall clock is 3 h behind the cluster's, judging on its cluster clock
// (hlc over the FSM's latest applied time), an action opened at the last
// entry with a deadline 300 ms on fails once 300 ms have passed on the
// cluster clock (600 ms of real time: it runs on from the floor at half the
// rate time passes), with no entry applied since (before it was held at the
// floor, a nanosecond a call, and the action would fail only when this
// leader's wall clock reached the deadline, 3 h later).
func TestDeadlineFallsDueAfterItsDurationOnALeaderBehind(t *testing.T) {
	const within = 300 * time.Millisecond
	opened := time.Now().UTC()
	f, sc := pendingOnAGoneNode(t, opened, opened.Add(within))
	wall := behindClock{by: 3 * time.Hour}
	now := hlc.New(wall.Now, f.AppliedAt).Now
	start := now()
	if got := expireScan(f, wall, now); len(got) != 0 && now().Sub(start) < within {
		t.Fatalf("failed at once, before its deadline: %+v", got)
	}
	for give := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		got := expireScan(f, wall, now)
		if len(got) == 1 && got[0].ID == sc.Action.ID && got[0].ErrorCode != "" {
			if passed := now().Sub(start); passed < within-time.Millisecond {
				t.Fatalf("failed %s after it was opened, before its deadline %s on", passed, within)
			}
			return
		}
		if len(got) != 0 || time.Now().After(give) {
			t.Fatalf("cluster clock %s past its first reading, deadline %s after the action was opened: failed %+v, want %s failed at its deadline (cluster clock %s, floor %s)",
				now().Sub(start), within, got, sc.Action.ID, now(), f.AppliedAt())
		}
	}
}
