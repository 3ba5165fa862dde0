package session

import (
	"context"
	"errors"
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
		mu.Lock()
		_ = st.Close()
		mu.Unlock()
	}
	st.CancelRead(codeStreamCancelled)
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
