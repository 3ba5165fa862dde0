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
	s.mu.Lock()
	c := s.sessions[nodeID]
	s.mu.Unlock()
	if c == nil {
		return fmt.Errorf("call node %s: %w", nodeID, ErrNotConnected)
	}
	st, err := c.qc.OpenStreamSync(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if c.qc.Context().Err() != nil {
			return fmt.Errorf("call node %s: %w: %w", nodeID, ErrNotConnected, err)
		}
		return fmt.Errorf("call node %s: open stream: %w", nodeID, err)
	}
	finished := false
	var once sync.Once
	abort := func() {
		once.Do(func() {
			st.CancelRead(codeStreamDone)
			st.CancelWrite(codeStreamDone)
		})
	}
	// A cancelled ctx unblocks a pending read or write.
	stopWatch := context.AfterFunc(ctx, abort)
	defer func() {
		stopWatch()
		if finished {
			// Our side is complete: end the write side cleanly and stop
			// reading whatever the agent might still send.
			once.Do(func() {
				_ = st.Close()
				st.CancelRead(codeStreamDone)
			})
		} else {
			abort()
		}
	}()
	if err := pb.WriteEnvelope(st, req); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("call node %s: %w", nodeID, err)
	}
	for {
		env, err := pb.ReadEnvelope(st, 0)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, io.EOF) {
				return fmt.Errorf("call node %s: the agent ended the stream before the last answer: %w", nodeID, io.ErrUnexpectedEOF)
			}
			return fmt.Errorf("call node %s: %w", nodeID, err)
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
