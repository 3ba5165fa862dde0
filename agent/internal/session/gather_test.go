package session

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	pb "github.com/hostplane/hostplane/proto"
	"github.com/hostplane/hostplane/tests/framework"
)

// recordingStream records each Write and whether Close was called.
type recordingStream struct {
	mu     sync.Mutex
	writes [][]byte
	closed bool
	fail   error
}

func (s *recordingStream) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return 0, s.fail
	}
	s.writes = append(s.writes, bytes.Clone(p))
	return len(p), nil
}

func (s *recordingStream) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

func (s *recordingStream) snapshot() ([][]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]byte(nil), s.writes...), s.closed
}

// frames decodes every envelope of one write.
func frames(t *testing.T, b []byte) []*pb.Envelope {
	t.Helper()
	r := bytes.NewReader(b)
	var out []*pb.Envelope
	for r.Len() > 0 {
		env, err := pb.ReadEnvelope(r, 0)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, env)
	}
	return out
}

func progress(reply uint64, id string) *pb.Envelope {
	return &pb.Envelope{Seq: 1, ReplyTo: reply, Body: &pb.Envelope_ActionProgress{ActionProgress: &pb.ActionProgress{ActionId: id, Step: "accepted"}}}
}

func result(reply uint64, id string) *pb.Envelope {
	return &pb.Envelope{Seq: 2, ReplyTo: reply, Body: &pb.Envelope_ActionResult{ActionResult: &pb.ActionResult{ActionId: id, Success: true}}}
}

// TestFrameGathererOneWrite: the frames the handlers of a batch stream send
// within the wait go out in one write, in the order sent (each action's
// progress before its result); a frame after the wait starts the next
// write; close writes what is left at once, then ends the stream, and a
// send after it fails.
func TestFrameGathererOneWrite(t *testing.T) {
	st := &recordingStream{}
	// The wait is long enough for eight goroutines to send on a loaded
	// machine (with 50 ms, one scheduled late made a second write).
	g := &frameGatherer{st: st, ctx: context.Background(), wait: time.Second}
	var wg sync.WaitGroup
	for i := 1; i <= 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("act-%d", i)
			if err := g.send(progress(uint64(i), id)); err != nil {
				t.Error(err)
			}
			if err := g.send(result(uint64(i), id)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if w, _ := st.snapshot(); len(w) != 0 {
		t.Fatalf("%d writes before the wait ended, want none", len(w))
	}
	framework.WaitFor(t, "a write after the wait", 5*time.Second, 5*time.Millisecond, func() bool {
		w, _ := st.snapshot()
		return len(w) > 0
	})
	w, _ := st.snapshot()
	if len(w) != 1 {
		t.Fatalf("%d writes for 16 frames sent within the wait, want 1", len(w))
	}
	fs := frames(t, w[0])
	if len(fs) != 16 {
		t.Fatalf("the write holds %d frames, want 16", len(fs))
	}
	seen := map[uint64]int{} // ReplyTo → frames seen
	for _, f := range fs {
		switch seen[f.ReplyTo] {
		case 0:
			if f.GetActionProgress() == nil {
				t.Fatalf("request %d: %v before its progress", f.ReplyTo, f)
			}
		case 1:
			if f.GetActionResult() == nil {
				t.Fatalf("request %d: %v after its progress, want its result", f.ReplyTo, f)
			}
		}
		seen[f.ReplyTo]++
	}
	if err := g.send(progress(9, "act-9")); err != nil {
		t.Fatal(err)
	}
	g.close() // at once, not after the wait
	w, closed := st.snapshot()
	if !closed || len(w) != 2 || len(frames(t, w[1])) != 1 || frames(t, w[1])[0].ReplyTo != 9 {
		t.Fatalf("after close: closed %v, %d writes, want the last frame written and the stream closed", closed, len(w))
	}
	if err := g.send(result(9, "act-9")); err == nil {
		t.Fatal("a send after close was taken")
	}
}

// TestFrameGathererEnds: once the handlers' context ends, sends fail with
// its error and what is queued is dropped (nobody reads it); a failed write
// fails every later send.
func TestFrameGathererEnds(t *testing.T) {
	st := &recordingStream{}
	ctx, cancel := context.WithCancel(context.Background())
	g := &frameGatherer{st: st, ctx: ctx, wait: time.Hour}
	if err := g.send(progress(1, "a")); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := g.send(result(1, "a")); !errors.Is(err, context.Canceled) {
		t.Fatalf("send after the context ended: %v, want context.Canceled", err)
	}
	g.close()
	if w, _ := st.snapshot(); len(w) != 0 {
		t.Fatalf("%d writes after the context ended, want none", len(w))
	}

	st = &recordingStream{fail: errors.New("stream reset")}
	g = &frameGatherer{st: st, ctx: context.Background(), wait: time.Millisecond}
	if err := g.send(progress(1, "a")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := g.send(result(1, "a"))
		if err != nil {
			if !errors.Is(err, st.fail) {
				t.Fatalf("send after a failed write: %v, want the write's error", err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("sends still taken 5 s after a write failed")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
