package dispatch

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
	pb "github.com/hostplane/hostplane/proto"
)

// The first progress of a pending action is held progressHold for its
// result (see exchange). These tests drive exchange with a scripted agent
// (the frames its stream delivers) and record what the dispatcher proposes.

// proposed is one command the dispatcher proposed.
type proposed struct {
	t  fsm.CommandType
	v  any
	at time.Time
}

// heldRig is a dispatcher whose proposals are recorded (and a finish
// refused when refuseFinish is set) and whose agent answers with frames.
type heldRig struct {
	d            *Dispatcher
	mu           sync.Mutex
	got          []proposed
	refuseFinish bool
}

func newHeldRig(t *testing.T, frames []*pb.Envelope, streamErr error) *heldRig {
	r := &heldRig{}
	r.d = New(Deps{
		Propose: func(_ context.Context, ct fsm.CommandType, payload any) (*fsm.Result, error) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.got = append(r.got, proposed{ct, payload, time.Now()})
			if ct == fsm.CmdActionFinish && r.refuseFinish {
				return nil, errors.New("not the leader")
			}
			return &fsm.Result{}, nil
		},
		ActionDeadline: time.Minute,
	})
	r.d.call = func(_ context.Context, nodeID string, req *pb.Envelope, recv func(*pb.Envelope) (bool, error)) error {
		if nodeID != "hv-1" || req.GetActionAssign().GetActionId() != "act_1" {
			t.Errorf("sent %v to %s", req, nodeID)
		}
		for _, f := range frames {
			done, err := recv(f)
			if err != nil || done {
				return err
			}
		}
		return streamErr
	}
	return r
}

// proposals waits for n proposals (10 s at most), then three holds more
// for any that should not come, and returns what was proposed.
func (r *heldRig) proposals(n int) []proposed {
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		r.mu.Lock()
		k := len(r.got)
		r.mu.Unlock()
		if k >= n {
			break
		}
	}
	time.Sleep(3 * progressHold)
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]proposed(nil), r.got...)
}

func pendingAction() store.Action {
	return store.Action{Action: api.Action{ID: "act_1", Command: api.ActionServerProvision, Status: api.ActionPending},
		NodeID: "hv-1", Target: "hp-srv-1", Deadline: time.Now().Add(time.Minute)}
}

func progressFrame(id string) *pb.Envelope {
	return &pb.Envelope{Body: &pb.Envelope_ActionProgress{ActionProgress: &pb.ActionProgress{ActionId: id, Percent: 10, Step: "creating"}}}
}

func resultFrame(id string) *pb.Envelope {
	return &pb.Envelope{Body: &pb.Envelope_ActionResult{ActionResult: &pb.ActionResult{ActionId: id, Success: true}}}
}

func assign() *pb.ActionAssign { return &pb.ActionAssign{ActionId: "act_1"} }

// TestHeldStartDroppedWhenTheResultComesFirst: an action that ends within
// the hold is recorded by its result alone.
func TestHeldStartDroppedWhenTheResultComesFirst(t *testing.T) {
	r := newHeldRig(t, []*pb.Envelope{progressFrame("act_1"), resultFrame("act_1")}, nil)
	if err := r.d.exchange(context.Background(), pendingAction(), assign()); err != nil {
		t.Fatal(err)
	}
	got := r.proposals(1)
	if len(got) != 1 || got[0].t != fsm.CmdActionFinish {
		t.Fatalf("proposed %+v, want only the finish", got)
	}
	if f := got[0].v.(fsm.ActionFinish); f.ID != "act_1" || !f.Success {
		t.Fatalf("finish %+v", f)
	}
}

// TestHeldStartRecordedWhenTheStreamBreaks: the stream breaks while the
// first progress is held: the start is still recorded when the hold ends
// (the action shows running, started at the progress's arrival), and no
// result.
func TestHeldStartRecordedWhenTheStreamBreaks(t *testing.T) {
	broken := errors.New("stream reset by peer")
	r := newHeldRig(t, []*pb.Envelope{progressFrame("act_1")}, broken)
	arrived := time.Now()
	if err := r.d.exchange(context.Background(), pendingAction(), assign()); !errors.Is(err, broken) {
		t.Fatalf("exchange: %v, want the stream's error", err)
	}
	got := r.proposals(1)
	if len(got) != 1 || got[0].t != fsm.CmdActionProgress {
		t.Fatalf("proposed %+v, want the held start alone", got)
	}
	p := got[0].v.(fsm.ActionProgress)
	if p.ID != "act_1" || p.Percent != 10 || p.Step != "creating" {
		t.Fatalf("progress %+v", p)
	}
	if p.At.Before(arrived.Add(-time.Second)) || p.At.After(arrived.Add(progressHold/2)) {
		t.Fatalf("start recorded at %v, the progress arrived at %v", p.At, arrived)
	}
	if got[0].at.Before(arrived.Add(progressHold)) {
		t.Fatalf("start proposed %v after the progress, before the hold of %v ended", got[0].at.Sub(arrived), progressHold)
	}
}

// TestHeldStartRecordedWhenTheResultCannotBe: the result came within the
// hold but could not be recorded (leadership lost): the start it would
// have carried is recorded instead, and exchange fails (the action is sent
// again).
func TestHeldStartRecordedWhenTheResultCannotBe(t *testing.T) {
	r := newHeldRig(t, []*pb.Envelope{progressFrame("act_1"), resultFrame("act_1")}, nil)
	r.refuseFinish = true
	if err := r.d.exchange(context.Background(), pendingAction(), assign()); err == nil {
		t.Fatal("exchange succeeded with its result refused")
	}
	got := r.proposals(2)
	if len(got) != 2 || got[0].t != fsm.CmdActionFinish || got[1].t != fsm.CmdActionProgress {
		t.Fatalf("proposed %+v, want the refused finish, then the start", got)
	}
	if p := got[1].v.(fsm.ActionProgress); p.ID != "act_1" || p.Step != "creating" {
		t.Fatalf("progress %+v", p)
	}
}

// TestLongActionShowsRunningThenEnds: a result after the hold: the start
// is recorded when the hold ends, while the action still runs (the agent
// sends its result only once the start is recorded, or after 10 s without
// it), then the result.
func TestLongActionShowsRunningThenEnds(t *testing.T) {
	r := newHeldRig(t, nil, nil)
	r.d.call = func(_ context.Context, _ string, _ *pb.Envelope, recv func(*pb.Envelope) (bool, error)) error {
		if _, err := recv(progressFrame("act_1")); err != nil {
			return err
		}
		// Not a fixed sleep: on a loaded machine the hold's timer and a
		// sleep of a few holds can fire together after a stall, and the
		// result then overtakes the start.
		for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
			r.mu.Lock()
			k := len(r.got)
			r.mu.Unlock()
			if k > 0 {
				break
			}
		}
		_, err := recv(resultFrame("act_1"))
		return err
	}
	if err := r.d.exchange(context.Background(), pendingAction(), assign()); err != nil {
		t.Fatal(err)
	}
	got := r.proposals(2)
	if len(got) != 2 || got[0].t != fsm.CmdActionProgress || got[1].t != fsm.CmdActionFinish {
		t.Fatalf("proposed %+v, want the start, then the finish", got)
	}
}
