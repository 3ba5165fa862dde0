package session

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	pb "github.com/hostplane/hostplane/proto"
	"github.com/quic-go/quic-go"
	"google.golang.org/protobuf/proto"
)

// maxIncomingStreams bounds the coordinator's concurrent action and stats
// streams on one session.
const maxIncomingStreams = 256

// Stream error codes the agent uses when it gives up a stream.
const (
	codeStreamRefused   = quic.StreamErrorCode(1) // unreadable first frame
	codeStreamCancelled = quic.StreamErrorCode(2) // the handler's context ended
)

// firstFrameTimeout bounds how long a new stream may take to send its request.
const firstFrameTimeout = 10 * time.Second

// serveStreams runs Handle for every stream the coordinator opens, until the
// session ends; with batch (both ends speak pb.ProtocolActionBatch) a
// stream may carry several actions.
func (a *Agent) serveStreams(ctx context.Context, qc *quic.Conn, batch bool) {
	for {
		st, err := qc.AcceptStream(ctx)
		if err != nil {
			return
		}
		go a.serveStream(ctx, st, batch)
	}
}

// serveStream serves one stream: Handle for its first frame and, with
// batch, for every further ActionAssign (each in its own goroutine; frames
// answer by ReplyTo). With batch the coordinator ends its side right after
// its requests, and our side ends once every handler has returned and no
// request can follow; without it, once the one handler has returned.
func (a *Agent) serveStream(ctx context.Context, st *quic.Stream, batch bool) {
	_ = st.SetReadDeadline(time.Now().Add(firstFrameTimeout))
	req, err := pb.ReadEnvelope(st, 0)
	if err != nil {
		a.log.Debug("unreadable stream request", "err", err)
		st.CancelRead(codeStreamRefused)
		st.CancelWrite(codeStreamRefused)
		return
	}
	_ = st.SetReadDeadline(time.Time{})
	if a.cfg.Handle == nil {
		_ = pb.WriteEnvelope(st, &pb.Envelope{ReplyTo: req.Seq, Body: &pb.Envelope_Error{Error: &pb.Error{Code: "unsupported", Message: "this agent serves no requests"}}})
		_ = st.Close()
		st.CancelRead(codeStreamRefused)
		return
	}
	hctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The coordinator abandons a stream by stopping its reading (our write
	// side's context ends) or by resetting its writing (our read fails with
	// something other than EOF).
	stopWatch := context.AfterFunc(st.Context(), cancel)
	// Once ctx ends nobody waits for our frames: unblock a pending write.
	stopAbort := context.AfterFunc(hctx, func() { st.CancelWrite(codeStreamCancelled) })
	var mu sync.Mutex
	send := func(env *pb.Envelope) error {
		mu.Lock()
		defer mu.Unlock()
		if err := hctx.Err(); err != nil {
			return err
		}
		return pb.WriteEnvelope(st, env)
	}
	var gathered *frameGatherer
	if batch && req.GetActionAssign() != nil {
		// Several actions may share the stream: their frames go out
		// together (a stats stream's samples as before, each at once).
		gathered = &frameGatherer{st: st, ctx: hctx, wait: frameGather}
		send = gathered.send
	}
	var handlers sync.WaitGroup
	handle := func(req *pb.Envelope) {
		defer handlers.Done()
		a.cfg.Handle(hctx, req, send)
	}
	handlers.Add(1)
	requests := make(chan struct{}) // closed when no request can follow
	go func() {
		defer close(requests)
		for {
			env, err := pb.ReadEnvelope(st, 0)
			if err != nil {
				if !errors.Is(err, io.EOF) {
					cancel()
				}
				return
			}
			if batch && env.GetActionAssign() != nil {
				handlers.Add(1) // before requests closes: Wait below comes after
				go handle(env)
			}
			// Other frames are not part of the contract yet; ignored.
		}
	}()
	if !batch {
		handle(req)
	} else {
		go handle(req)
		select {
		case <-requests:
		case <-hctx.Done():
			st.CancelRead(codeStreamCancelled)
			<-requests
		}
	}
	handlers.Wait()
	stopWatch()
	if stopAbort() {
		// The handlers finished on their own: deliver what they wrote, then end.
		if gathered != nil {
			gathered.close()
		} else {
			mu.Lock()
			_ = st.Close()
			mu.Unlock()
		}
	}
	st.CancelRead(codeStreamCancelled)
}

// frameGather is how long the first frame a handler of a batch stream sends
// waits for the frames of the stream's other handlers before they are all
// written at once. The actions of a batch arrive together and most answer
// at once (the accepted progress of each, the result of a quick one): one
// write then takes a packet or a few where each frame took its own, which
// on both ends cost a QUIC send, a receive, an acknowledgement and the
// wake-ups of each (BenchmarkOrderCPU in tests/orders). A frame reaches the
// coordinator up to this much later.
const frameGather = 2 * time.Millisecond

// frameGatherer writes the frames of one batch stream's handlers: a frame
// sent while none is waiting starts a wait of wait, and every frame sent
// until it ends is written with it in one stream write, in the order sent.
type frameGatherer struct {
	st   io.WriteCloser  // the stream
	ctx  context.Context // the handlers' context: once it ends, frames are dropped
	wait time.Duration

	mu      sync.Mutex
	pending []byte      // encoded frames not yet written
	timer   *time.Timer // the wait under way, or nil
	err     error       // the first failed write: every later send returns it
	closed  bool
}

// send queues env for the next write; its error is the context's once it
// ended, or the stream's from an earlier write.
func (g *frameGatherer) send(env *pb.Envelope) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.ctx.Err(); err != nil {
		return err
	}
	if g.err != nil {
		return g.err
	}
	if g.closed {
		return io.ErrClosedPipe
	}
	w := bytes.NewBuffer(g.pending)
	if err := pb.WriteEnvelope(w, env); err != nil {
		return err
	}
	g.pending = w.Bytes()
	if g.timer == nil {
		g.timer = time.AfterFunc(g.wait, g.flush)
	}
	return nil
}

// flush writes what is queued (the wait is over).
func (g *frameGatherer) flush() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.timer = nil
	g.writeLocked()
}

func (g *frameGatherer) writeLocked() {
	if len(g.pending) == 0 || g.err != nil || g.ctx.Err() != nil {
		g.pending = g.pending[:0]
		return
	}
	if _, err := g.st.Write(g.pending); err != nil {
		g.err = fmt.Errorf("write envelope: %w", err)
	}
	g.pending = g.pending[:0]
}

// close writes what is queued at once and ends our side of the stream; a
// later send fails.
func (g *frameGatherer) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.timer != nil {
		g.timer.Stop()
		g.timer = nil
	}
	g.writeLocked()
	g.closed = true
	_ = g.st.Close()
}

// InventoryChanged asks the session to check the inventory now (after an
// action finished) instead of at the next interval. It never blocks.
func (a *Agent) InventoryChanged() {
	select {
	case a.invKick <- struct{}{}:
	default:
	}
}

// inventoryLoop sends the inventory on a stream of its own as soon as the
// session is up, then again whenever it differs from what was last sent.
func (a *Agent) inventoryLoop(ctx context.Context, qc *quic.Conn) {
	var (
		st   *quic.Stream
		last *pb.Inventory
		seq  uint64
	)
	defer func() {
		if st != nil {
			_ = st.Close()
		}
	}()
	check := func() {
		ictx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		inv, err := a.cfg.Inventory(ictx)
		if err != nil {
			if ctx.Err() == nil {
				a.log.Warn("inventory not collected", "err", err)
			}
			return
		}
		inv = normalizeInventory(inv)
		if last != nil && sameInventory(last, inv) {
			return
		}
		if st == nil {
			if st, err = qc.OpenStreamSync(ictx); err != nil {
				st = nil
				if ctx.Err() == nil {
					a.log.Warn("open inventory stream", "err", err)
				}
				return
			}
		}
		inv.TakenAtUnixMs = a.cfg.Clock.Now().UnixMilli()
		seq++
		_ = st.SetWriteDeadline(time.Now().Add(firstFrameTimeout))
		if err := pb.WriteEnvelope(st, &pb.Envelope{Seq: seq, Body: &pb.Envelope_Inventory{Inventory: inv}}); err != nil {
			if ctx.Err() == nil {
				a.log.Warn("send inventory", "err", err)
			}
			st.CancelWrite(codeStreamCancelled)
			st, last = nil, nil // a new stream and a full inventory next time
			return
		}
		last = inv
	}
	check()
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.invKick:
		case <-a.cfg.Clock.After(a.cfg.InventoryInterval):
		}
		check()
	}
}

// normalizeInventory returns a copy with VMs sorted by name and templates
// sorted, so equal inventories compare equal.
func normalizeInventory(inv *pb.Inventory) *pb.Inventory {
	out := proto.Clone(inv).(*pb.Inventory)
	slices.SortFunc(out.Vms, func(x, y *pb.VM) int { return strings.Compare(x.GetName(), y.GetName()) })
	slices.Sort(out.Templates)
	return out
}

// sameInventory compares everything but the time it was taken.
func sameInventory(x, y *pb.Inventory) bool {
	xc, yc := proto.Clone(x).(*pb.Inventory), proto.Clone(y).(*pb.Inventory)
	xc.TakenAtUnixMs, yc.TakenAtUnixMs = 0, 0
	return proto.Equal(xc, yc)
}
