package session

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	pb "github.com/hostplane/hostplane/proto"
	"github.com/quic-go/quic-go"
)

// ErrNotConnected means the node holds no session with this coordinator.
var ErrNotConnected = errors.New("node is not connected")

// Stream error codes the coordinator uses when it abandons a stream.
const (
	// codeStreamDone: the caller has what it wanted (or gave up); the agent
	// should stop working for this stream.
	codeStreamDone = quic.StreamErrorCode(0)
)

// Call sends req to the node on a new stream of its current session and hands
// every frame the agent answers to recv, until recv returns done (nil), recv
// fails (its error), the stream ends early (an error wrapping
// io.ErrUnexpectedEOF or the QUIC error) or ctx ends (ctx.Err()). The stream is
// closed on return; when Call returns before the agent finished, the agent's
// handler sees its context end. Many calls may run at once on one session.
func (s *Server) Call(ctx context.Context, nodeID string, req *pb.Envelope, recv func(*pb.Envelope) (done bool, err error)) error {
	c := s.session(nodeID)
	if c == nil {
		return fmt.Errorf("call node %s: %w", nodeID, ErrNotConnected)
	}
	st, err := openCall(ctx, c, nodeID)
	if err != nil {
		return err
	}
	finished := false
	// Our side complete: end the write side cleanly and stop reading
	// whatever the agent might still send.
	defer func() { st.release(finished, true) }()
	if err := pb.WriteEnvelope(st, req); err != nil {
		return writeErr(ctx, nodeID, err)
	}
	if s.batches(c) {
		// A 1.4 agent ends its side once our side has ended (see
		// pb.ProtocolVersion); nothing follows the request.
		_ = st.Close()
	}
	for {
		env, err := pb.ReadEnvelope(st, 0)
		if err != nil {
			return readErr(ctx, nodeID, err)
		}
		done, err := recv(env)
		if err != nil {
			return err
		}
		if done {
			finished = true
			return nil
		}
	}
}

// Batches says whether the node's current session takes several actions on
// one stream (CallEach): its agent announced pb.ProtocolActionBatch or later.
func (s *Server) Batches(nodeID string) bool {
	c := s.session(nodeID)
	return c != nil && s.batches(c)
}

// batches: both ends of the session speak pb.ProtocolActionBatch.
func (s *Server) batches(c *conn) bool {
	return c.protocol >= pb.ProtocolActionBatch && s.cfg.ProtocolVersion >= pb.ProtocolActionBatch
}

// CallEach sends reqs (ActionAssign envelopes with distinct Seq) to the node
// on one new stream of its current session, which must take batches
// (Batches), and hands every frame the agent answers to recv with the index
// of the request it answers (its ReplyTo); frames answering no open request
// are dropped. A request's exchange ends when recv returns done or an error
// for it, when the stream ends early (an error wrapping io.ErrUnexpectedEOF
// or the QUIC error) or when ctx ends (ctx.Err()); end is then called once
// with its index and nil or that error, from CallEach's goroutine, and
// nothing more of it reaches recv. CallEach returns once every request's
// exchange has ended. The agent's handlers see their context end when ctx
// ends or the stream breaks, not when one request's recv fails. A request
// that cannot be encoded ends them all with that error before any stream
// is opened.
func (s *Server) CallEach(ctx context.Context, nodeID string, reqs []*pb.Envelope, recv func(i int, env *pb.Envelope) (done bool, err error), end func(i int, err error)) {
	open := make(map[uint64]int, len(reqs))
	for i, r := range reqs {
		open[r.Seq] = i
	}
	endAll := func(err error) {
		for _, i := range open {
			end(i, err)
		}
		clear(open)
	}
	c := s.session(nodeID)
	if c == nil || !s.batches(c) {
		// (A session of an older agent counts as none: send on its own.)
		endAll(fmt.Errorf("call node %s: %w (in a session that takes several actions per stream)", nodeID, ErrNotConnected))
		return
	}
	// All requests in one write (one packet when they fit), marshalled
	// into one buffer, then our side ends.
	buf, err := pb.Frames(reqs)
	if err != nil {
		endAll(fmt.Errorf("call node %s: %w", nodeID, err))
		return
	}
	st, err := openCall(ctx, c, nodeID)
	if err != nil {
		endAll(err)
		return
	}
	// Every answer in: stop reading whatever the agent might still send (our
	// side ended after the requests).
	defer func() { st.release(len(open) == 0, false) }()
	if _, err := st.Write(buf); err != nil {
		endAll(writeErr(ctx, nodeID, err))
		return
	}
	_ = st.Close()
	for len(open) > 0 {
		env, err := pb.ReadEnvelope(st, 0)
		if err != nil {
			endAll(readErr(ctx, nodeID, err))
			return
		}
		i, ok := open[env.ReplyTo]
		if !ok {
			continue
		}
		done, err := recv(i, env)
		if done || err != nil {
			delete(open, env.ReplyTo)
			end(i, err)
		}
	}
}

// Protocol is the protocol version the agent of the node's current session
// announced (0: the node holds no session here).
func (s *Server) Protocol(nodeID string) uint32 {
	if c := s.session(nodeID); c != nil {
		return c.protocol
	}
	return 0
}

// session is the node's current session, or nil.
func (s *Server) session(nodeID string) *conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions[nodeID]
}

// callStream is the stream of one Call or CallEach: ctx's end abandons it
// (both directions, which unblocks a pending read or write), and release
// ends it once the call returns.
type callStream struct {
	*quic.Stream
	once      sync.Once
	stopWatch func() bool
}

// openCall opens a call's stream on c, the session of nodeID. Its error is
// ctx's own when ctx ended, one wrapping ErrNotConnected when the session
// has ended, else the failure to open.
func openCall(ctx context.Context, c *conn, nodeID string) (*callStream, error) {
	st, err := c.qc.OpenStreamSync(ctx)
	if err != nil {
		switch {
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case c.qc.Context().Err() != nil:
			return nil, fmt.Errorf("call node %s: %w: %w", nodeID, ErrNotConnected, err)
		default:
			return nil, fmt.Errorf("call node %s: open stream: %w", nodeID, err)
		}
	}
	cs := &callStream{Stream: st}
	cs.stopWatch = context.AfterFunc(ctx, cs.abort)
	return cs, nil
}

// abort abandons both directions of the stream (the agent's handlers see
// their context end), unless the stream was already ended or abandoned.
func (cs *callStream) abort() {
	cs.once.Do(func() {
		cs.CancelRead(codeStreamDone)
		cs.CancelWrite(codeStreamDone)
	})
}

// release ends the stream when its call returns: complete (the call has
// every answer it waited for) stops reading whatever the agent may still
// send, after ending the write side cleanly when closeWrite; otherwise the
// stream is abandoned (abort).
func (cs *callStream) release(complete, closeWrite bool) {
	cs.stopWatch()
	if !complete {
		cs.abort()
		return
	}
	cs.once.Do(func() {
		if closeWrite {
			_ = cs.Close()
		}
		cs.CancelRead(codeStreamDone)
	})
}

// writeErr is the error of a call whose request could not be written: ctx's
// own when ctx ended (its end broke the stream).
func writeErr(ctx context.Context, nodeID string, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("call node %s: %w", nodeID, err)
}

// readErr is the error of a call whose answer could not be read: ctx's own
// when ctx ended, one wrapping io.ErrUnexpectedEOF when the agent ended its
// side first.
func readErr(ctx context.Context, nodeID string, err error) error {
	if ctx.Err() == nil && errors.Is(err, io.EOF) {
		return fmt.Errorf("call node %s: the agent ended the stream before the last answer: %w", nodeID, io.ErrUnexpectedEOF)
	}
	return writeErr(ctx, nodeID, err)
}

// ProtocolVersion returns the protocol version the node announced in the Hello
// of its current session, and whether it holds one.
func (s *Server) ProtocolVersion(nodeID string) (uint32, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.sessions[nodeID]
	if c == nil {
		return 0, false
	}
	return c.protocol, true
}

// ConsoleURL returns the console base URL the node's agent announced in the
// Hello of its current session ("" when it serves none), and whether the node
// holds a session here.
func (s *Server) ConsoleURL(nodeID string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.sessions[nodeID]
	if c == nil {
		return "", false
	}
	return c.console, true
}

// serveInventory reads the Inventory frames of an agent's inventory stream
// (first already read) until the stream or the session ends.
func (s *Server) serveInventory(ctx context.Context, st *quic.Stream, nodeID string, first *pb.Inventory) {
	defer st.Close()
	stop := context.AfterFunc(ctx, func() { st.CancelRead(codeStreamDone) })
	defer stop()
	// Inventory is sent only when it changes: no read deadline beyond the
	// session's own liveness.
	_ = st.SetDeadline(time.Time{})
	inv := first
	for {
		if inv != nil && s.cfg.OnInventory != nil {
			s.cfg.OnInventory(nodeID, inv)
		}
		env, err := pb.ReadEnvelope(st, 0)
		if err != nil {
			if !errors.Is(err, io.EOF) && ctx.Err() == nil {
				s.log.Debug("inventory stream ended", "node", nodeID, "err", err)
			}
			st.CancelRead(codeStreamDone)
			return
		}
		// Frames of other types (a newer agent's) are ignored.
		inv = env.GetInventory()
	}
}
