package session_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/session"
	pb "github.com/hostplane/hostplane/proto"
)

// callEchoEach runs echo actions act-from … act-(to-1) on one stream and
// checks their frames as callEcho does.
func callEchoEach(ctx context.Context, srv *session.Server, node string, from, to int) error {
	var reqs []*pb.Envelope
	frames := make([][]*pb.Envelope, to-from)
	for i := from; i < to; i++ {
		req := echo(fmt.Sprintf("act-%d", i), fmt.Sprintf(`{"n":"act-%d"}`, i))
		req.Seq = uint64(i - from + 1)
		reqs = append(reqs, req)
	}
	var firstErr error
	srv.CallEach(ctx, node, reqs, func(i int, env *pb.Envelope) (bool, error) {
		frames[i] = append(frames[i], env)
		return env.GetActionResult() != nil, nil
	}, func(i int, err error) {
		if err != nil && firstErr == nil {
			firstErr = err
		}
	})
	if firstErr != nil {
		return firstErr
	}
	for i, fs := range frames {
		id := fmt.Sprintf("act-%d", from+i)
		if len(fs) != 2 || fs[0].GetActionProgress().GetStep() != "accepted" || fs[0].ReplyTo != uint64(i+1) || fs[0].GetActionProgress().GetActionId() != id {
			return fmt.Errorf("frames %v", fs)
		}
		if r := fs[1].GetActionResult(); !r.Success || r.ActionId != id || string(r.Result) != fmt.Sprintf(`{"n":%q}`, id) {
			return fmt.Errorf("result %v", r)
		}
	}
	return nil
}

// unanswered sends a request the testagent's handler returns from without
// a frame (a Ping): the agent must end its side of the stream, so the call
// ends with io.ErrUnexpectedEOF, not at its 10 s timeout.
func unanswered(t *testing.T, srv *session.Server, node string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := srv.Call(ctx, node, &pb.Envelope{Seq: 1, Body: &pb.Envelope_Ping{Ping: &pb.Ping{}}}, func(env *pb.Envelope) (bool, error) {
		return false, fmt.Errorf("frame %v", env)
	})
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("unanswered request: %v", err)
	}
}

// TestCallEachOverLiveSession: an agent of this version takes several
// actions on one stream (protocol 1.4), answers each by its Seq, and its
// side of a one-request stream still ends when its handler returns.
func TestCallEachOverLiveSession(t *testing.T) {
	f := newCallsFixture(t)
	a := f.agent(t, "node-1")
	if !f.srv.Batches("node-1") {
		t.Fatal("a 1.4 agent does not take batches")
	}
	ctx := context.Background()

	t.Run("batch", func(t *testing.T) {
		if err := callEchoEach(ctx, f.srv, "node-1", 0, 8); err != nil {
			t.Fatal(err)
		}
		if err := callEchoEach(ctx, f.srv, "node-1", 100, 101); err != nil { // a batch of one
			t.Fatal(err)
		}
	})

	t.Run("one request per stream", func(t *testing.T) {
		if err := callEcho(ctx, f.srv, "node-1", "single"); err != nil {
			t.Fatal(err)
		}
		unanswered(t, f.srv, "node-1")
	})

	t.Run("each ends on its own, cancel ends the rest", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		reqs := []*pb.Envelope{echo("b0", "{}"), {Body: &pb.Envelope_ActionAssign{ActionAssign: &pb.ActionAssign{ActionId: "blk2", Command: "block"}}}, echo("b2", "{}")}
		for i, r := range reqs {
			r.Seq = uint64(10 + i)
		}
		ends := make(chan string, 3)
		done := make(chan struct{})
		go func() {
			defer close(done)
			f.srv.CallEach(cctx, "node-1", reqs, func(i int, env *pb.Envelope) (bool, error) {
				if env.ReplyTo != reqs[i].Seq {
					return false, fmt.Errorf("frame %v for request %d", env, i)
				}
				return env.GetActionResult() != nil, nil
			}, func(i int, err error) {
				ends <- fmt.Sprintf("%d:%v", i, err)
			})
		}()
		got := map[string]bool{}
		for range 2 {
			select {
			case e := <-ends:
				got[e] = true
			case <-time.After(10 * time.Second):
				t.Fatalf("the echo actions did not end while another blocks: %v", got)
			}
		}
		if !got["0:<nil>"] || !got["2:<nil>"] {
			t.Fatalf("ends %v", got)
		}
		a.WaitID("blocking", "blk2", 10*time.Second)
		cancel()
		select {
		case e := <-ends:
			if e != "1:"+context.Canceled.Error() {
				t.Fatalf("blocked action ended %q", e)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the blocked action did not end on cancel")
		}
		<-done
		a.WaitID("cancelled", "blk2", 10*time.Second)
	})
}

// TestCallsWithPreviousCoordinator: an agent of this version under a 1.3
// coordinator (which keeps its side of a stream open until it has the
// answer) serves one request per stream and ends its side when the
// handler returns, as before 1.4.
func TestCallsWithPreviousCoordinator(t *testing.T) {
	f := newCallsFixture(t, func(c *session.Config) { c.ProtocolVersion = 103 })
	f.agent(t, "node-1")
	if f.srv.Batches("node-1") {
		t.Fatal("a 1.3 coordinator batches")
	}
	if err := callEcho(context.Background(), f.srv, "node-1", "x1"); err != nil {
		t.Fatal(err)
	}
	unanswered(t, f.srv, "node-1")
	var errs []error
	f.srv.CallEach(context.Background(), "node-1", []*pb.Envelope{echo("x2", "{}")}, func(int, *pb.Envelope) (bool, error) {
		return false, errors.New("no frame expected")
	}, func(_ int, err error) { errs = append(errs, err) })
	if len(errs) != 1 || !errors.Is(errs[0], session.ErrNotConnected) {
		t.Fatalf("CallEach on a 1.3 session: %v", errs)
	}
}

// TestCallEachUnansweredEnds: a request of a batch the agent returns from
// without an answer (a Ping, whose handler writes nothing) ends with
// io.ErrUnexpectedEOF once the others are answered, not when the caller's
// context ends: CallEach ends its side after the requests, so the agent
// ends its own once its handlers have returned.
func TestCallEachUnansweredEnds(t *testing.T) {
	f := newCallsFixture(t)
	f.agent(t, "node-1")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	reqs := []*pb.Envelope{{Seq: 1, Body: &pb.Envelope_Ping{Ping: &pb.Ping{}}}, echo("u1", "{}")}
	reqs[1].Seq = 2
	ends := map[int]error{}
	f.srv.CallEach(ctx, "node-1", reqs, func(i int, env *pb.Envelope) (bool, error) {
		if i == 0 {
			return false, fmt.Errorf("frame %v for the ping", env)
		}
		return env.GetActionResult() != nil, nil
	}, func(i int, err error) { ends[i] = err })
	if len(ends) != 2 || ends[1] != nil || !errors.Is(ends[0], io.ErrUnexpectedEOF) {
		t.Fatalf("ends %v, want the echo answered and the ping ended by the agent's side", ends)
	}
}

// TestCallEachUnencodableFreesStream: a batch with a request that cannot be
// encoded (a string field that is not UTF-8) ends every request with the
// encoding error and holds nothing on the agent's side: after as many such
// batches (and single calls) as the agent takes concurrent streams (256), an
// action still goes through at once. CallEach left a stream open with
// nothing written, which held one of them until the agent's 10 s first-frame
// timeout, so the next call waited.
func TestCallEachUnencodableFreesStream(t *testing.T) {
	f := newCallsFixture(t)
	f.agent(t, "node-1")
	ctx := context.Background()
	for n := range 256 {
		bad := echo("bad\xff", "{}")
		bad.Seq = 2
		reqs := []*pb.Envelope{echo(fmt.Sprintf("ok-%d", n), "{}"), bad}
		var errs []error
		f.srv.CallEach(ctx, "node-1", reqs, func(int, *pb.Envelope) (bool, error) {
			return false, errors.New("no frame expected")
		}, func(_ int, err error) { errs = append(errs, err) })
		if len(errs) != 2 || errs[0] == nil || errs[1] == nil || !strings.Contains(errs[0].Error(), "UTF-8") {
			t.Fatalf("batch %d with an unencodable request: ends %v", n, errs)
		}
		// Call, which writes to the stream directly, abandons it.
		if err := f.srv.Call(ctx, "node-1", bad, func(*pb.Envelope) (bool, error) { return true, nil }); err == nil || !strings.Contains(err.Error(), "UTF-8") {
			t.Fatalf("call %d with an unencodable request: %v", n, err)
		}
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := callEcho(cctx, f.srv, "node-1", "after"); err != nil {
		t.Fatalf("an action after 256 unencodable batches: %v", err)
	}
}
