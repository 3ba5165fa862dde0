package dispatch

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	pb "github.com/hostplane/hostplane/proto"
	"github.com/prometheus/client_golang/prometheus"
)

// actionOn is a pending action of node.
func actionOn(id, node string) store.Action {
	a := pendingAction()
	a.ID, a.NodeID = id, node
	return a
}

// finishes returns the ids of the finishes proposed so far.
func (r *heldRig) finishes() map[string]bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]bool{}
	for _, p := range r.got {
		if p.t == fsm.CmdActionFinish {
			out[p.v.(fsm.ActionFinish).ID] = true
		}
	}
	return out
}

// waitIdle waits until no action is in flight (10 s at most).
func waitIdle(t *testing.T, d *Dispatcher) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		d.mu.Lock()
		n := len(d.inflight)
		d.mu.Unlock()
		if n == 0 {
			return
		}
	}
	t.Fatal("actions still in flight after 10 s")
}

// TestSendBatchesPerNode: the actions of a node that takes batches go on one
// stream (one CallEach with distinct Seqs, in scan order), each recorded as
// soon as its own result is in (not when the stream's last one is); one
// whose exchange fails is sent again later (retryAt) while the others are
// done; a node with a single action, or one whose agent is older, gets one
// stream per action.
func TestSendBatchesPerNode(t *testing.T) {
	r := newHeldRig(t, nil, nil)
	d := r.d
	d.batches = func(node string) bool { return node != "old" }
	var singles []string
	d.call = func(_ context.Context, node string, req *pb.Envelope, recv func(*pb.Envelope) (bool, error)) error {
		id := req.GetActionAssign().GetActionId()
		r.mu.Lock()
		singles = append(singles, node+"/"+id)
		r.mu.Unlock()
		_, err := recv(resultFrame(id))
		return err
	}
	batches := make(chan []string, 4)
	broken := errors.New("stream reset by peer")
	d.callEach = func(_ context.Context, node string, reqs []*pb.Envelope, recv func(int, *pb.Envelope) (bool, error), end func(int, error)) {
		var ids []string
		seqs := map[uint64]bool{}
		for _, q := range reqs {
			ids = append(ids, q.GetActionAssign().GetActionId())
			seqs[q.Seq] = true
		}
		if len(seqs) != len(reqs) {
			t.Errorf("batch %v: Seqs not distinct", ids)
		}
		batches <- append([]string{node}, ids...)
		// The first result is recorded while the others are still out.
		if done, err := recv(0, resultFrame(ids[0])); !done || err != nil {
			t.Errorf("result of %s: %v %v", ids[0], done, err)
		}
		end(0, nil)
		for deadline := time.Now().Add(10 * time.Second); !r.finishes()[ids[0]]; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Errorf("%s not recorded before the batch ended", ids[0])
				break
			}
		}
		// The second's frame answering another action fails it alone; the
		// third's stream breaks.
		if _, err := recv(1, resultFrame("act_other")); err == nil {
			t.Error("a result for another action was taken")
		} else {
			end(1, err)
		}
		recv(2, progressFrame(ids[2]))
		end(2, broken)
	}
	d.sendAll(context.Background(), []store.Action{
		actionOn("act_a", "hv-1"), actionOn("act_s", "hv-2"), actionOn("act_b", "hv-1"),
		actionOn("act_o1", "old"), actionOn("act_c", "hv-1"), actionOn("act_o2", "old"),
	})
	waitIdle(t, d)
	close(batches)
	var got []string
	for b := range batches {
		got = append(got, fmt.Sprint(b))
	}
	if len(got) != 1 || got[0] != "[hv-1 act_a act_b act_c]" {
		t.Fatalf("batches %v, want one of hv-1's three", got)
	}
	r.mu.Lock()
	slices.Sort(singles)
	if fmt.Sprint(singles) != "[hv-2/act_s old/act_o1 old/act_o2]" {
		t.Errorf("sent alone %v", singles)
	}
	r.mu.Unlock()
	if f := r.finishes(); len(f) != 4 || !f["act_a"] || !f["act_s"] || !f["act_o1"] || !f["act_o2"] {
		t.Fatalf("finished %v", f)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, id := range []string{"act_b", "act_c"} {
		if d.retryAt[id].IsZero() || d.failed[id] != 1 {
			t.Errorf("%s: retry at %v after %d failures; want a retry", id, d.retryAt[id], d.failed[id])
		}
	}
	if !d.retryAt["act_a"].IsZero() {
		t.Error("a recorded action is to be sent again")
	}
	if d.sent["act_a"] != 1 || d.sent["act_c"] != 1 {
		t.Errorf("sends %v", d.sent)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(d.streams)
	if mfs, err := reg.Gather(); err != nil || len(mfs) != 1 || mfs[0].GetMetric()[0].GetCounter().GetValue() != 4 {
		t.Errorf("streams counted: %v %v, want 4 (one batch, three alone)", mfs, err)
	}
}

// TestBatchHeldStart: in a batch, an action whose result does not come
// within the hold shows running (its held start recorded), as on a stream
// of its own, while another action of the batch, done within the hold, is
// finished without a start and without waiting for the first. The agent
// sends the held action's result only once its start and the other's finish
// are proposed (not after a sleep of twice the hold: the start's timer and
// its proposal ran late under load, and the start came after the result).
func TestBatchHeldStart(t *testing.T) {
	r := newHeldRig(t, nil, nil)
	kinds := func() []string {
		r.mu.Lock()
		defer r.mu.Unlock()
		var out []string
		for _, p := range r.got {
			switch v := p.v.(type) {
			case fsm.ActionProgress:
				out = append(out, "progress "+v.ID)
			case fsm.ActionFinish:
				out = append(out, "finish "+v.ID)
			}
		}
		return out
	}
	r.d.batches = func(string) bool { return true }
	r.d.callEach = func(_ context.Context, _ string, reqs []*pb.Envelope, recv func(int, *pb.Envelope) (bool, error), end func(int, error)) {
		recv(0, progressFrame("act_a"))
		recv(1, progressFrame("act_b"))
		recv(1, resultFrame("act_b"))
		end(1, nil)
		for give := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
			if k := kinds(); slices.Contains(k, "progress act_a") && slices.Contains(k, "finish act_b") {
				break
			} else if time.Now().After(give) {
				t.Errorf("5 s after act_a's progress, act_b's result and no result of act_a: proposed %v, want act_a's start and act_b's finish", k)
				break
			}
		}
		recv(0, resultFrame("act_a"))
		end(0, nil)
	}
	r.d.sendAll(context.Background(), []store.Action{actionOn("act_a", "hv-1"), actionOn("act_b", "hv-1")})
	waitIdle(t, r.d)
	r.proposals(3)
	got := kinds()
	if len(got) != 3 || got[2] != "finish act_a" || !slices.Contains(got[:2], "progress act_a") || !slices.Contains(got[:2], "finish act_b") {
		t.Fatalf("proposed %v, want act_a's start and act_b's finish (either first), then act_a's finish", got)
	}
}
