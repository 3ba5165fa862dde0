package httpapi

import (
	"context"
	"errors"
	"sync"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/raftnode"
)

// usageFlush is the leader's key usage flush state (FlushUsage).
type usageFlush struct {
	mu  sync.Mutex // one flush at a time
	seq uint64     // the last flush's sequence
	// pending is a flush whose proposal failed, kept to be proposed again;
	// term is the Raft term read after Raft answered its last proposal that
	// failed: every copy of it the log may hold, but for inFlight's, was
	// appended in that term or an earlier one. A proposal withdrawn from
	// the local queue (raftnode.ErrWithdrawn) left no copy.
	pending *fsm.KeyUsageFlush
	term    uint64
	// inFlight are pending's proposals whose wait ended after they left the
	// local queue for Raft, not yet answered: each may still be appended,
	// in a term no one knows yet, so pending's fate is not settled before
	// Raft answered them.
	inFlight []*raftnode.InFlightError
}

// failed notes that a proposal of pending failed with err, term the Raft
// term read after; first: pending's first proposal.
func (f *usageFlush) failed(err error, term uint64, first bool) {
	if first {
		f.term, f.inFlight = 0, nil
	}
	if f.answered() {
		f.drop() // an earlier proposal of it committed: written
		return
	}
	var inFlight *raftnode.InFlightError
	switch {
	case errors.Is(err, raftnode.ErrWithdrawn):
		// Taken out of the local queue: it never reaches the log.
	case errors.As(err, &inFlight):
		f.inFlight = append(f.inFlight, inFlight)
	default:
		f.term = max(f.term, term)
	}
}

// answered folds the in-flight proposals Raft answered into term, and
// reports whether one of them committed (so pending is written).
func (f *usageFlush) answered() (committed bool) {
	left := f.inFlight[:0]
	for _, e := range f.inFlight {
		select {
		case <-e.Answered():
			term, err := e.Answer()
			if err == nil {
				committed = true
			} else {
				f.term = max(f.term, term)
			}
		default:
			left = append(left, e)
		}
	}
	clear(f.inFlight[len(left):])
	f.inFlight = left
	return committed
}

// drop forgets pending (written, or its uses handed back).
func (f *usageFlush) drop() {
	f.pending, f.term, f.inFlight = nil, 0, nil
}

// FlushUsage (the leader) writes the key usage recorded since the last flush
// through Raft as one command, and returns the proposal's error.
//
// From semantics level fsm.LevelUsageFlush a flush whose proposal fails is
// not lost: it is kept and proposed again, as it was, by the next call,
// before what was recorded since (which stays in the recorder until then).
// Each flush carries an id (this coordinator, the term it leads in, a
// sequence) that the FSM records on the keys it writes, so a flush that
// committed though its proposal failed (its answer lost to a timeout, a
// leader deposed after it appended the entry) is not written a second time
// (fsm.CmdKeyUsageFlush). A coordinator that stops leading with a kept
// flush hands its uses to the new leader once it can tell they were not
// written (ShipUsage, settleUsageFlush): a proposal whose wait ended while
// it still stood in the member's queue was withdrawn from it, and never
// reaches the log (raftnode.ErrWithdrawn); one Raft already held may be
// appended later, in a later term, so its answer is waited for first
// (raftnode.InFlightError). The kept flush is one command,
// bounded as any flush is (per key a count, the newest use and at most
// usageEntriesPerFlush log entries); while it cannot be written the
// recorder keeps gathering uses with the same bound, so however long the
// proposals fail, memory grows only with the number of keys used.
//
// Below that level (a coordinator of the release before may still apply
// the log) the flush is fsm.CmdKeyUsage, which such a coordinator applies
// and which a second proposal would count twice: one whose proposal fails
// is dropped, as before.
func (a *API) FlushUsage(ctx context.Context) error {
	f := &a.usageFlush
	f.mu.Lock()
	defer f.mu.Unlock()
	if a.state.ClusterLevel() < fsm.LevelUsageFlush || a.cfg.NodeID == "" {
		// A flush kept at the level above (a restored backup lowers the
		// level) is handed back once settled.
		a.settleUsageFlush()
		return a.flushUsageUnkept(ctx)
	}
	if p := f.pending; p != nil {
		if err := a.proposeUsageFlush(ctx, p); err != nil {
			f.failed(err, a.raft.Term(), false)
			return err
		}
		// Written: a copy of it still to be appended changes nothing.
		f.drop()
	}
	u := a.Usage.Take()
	if u == nil {
		return nil
	}
	f.seq++
	p := &fsm.KeyUsageFlush{By: a.cfg.NodeID, Term: a.raft.Term(), Seq: f.seq, Keys: u.Keys}
	if err := a.proposeUsageFlush(ctx, p); err != nil {
		f.pending = p
		f.failed(err, a.raft.Term(), true)
		return err
	}
	return nil
}

// flushUsageUnkept is the flush below fsm.LevelUsageFlush: CmdKeyUsage,
// dropped when its proposal fails.
func (a *API) flushUsageUnkept(ctx context.Context) error {
	u := a.Usage.Take()
	if u == nil {
		return nil
	}
	env, err := fsm.NewEnvelope(fsm.CmdKeyUsage, a.now(), u)
	if err != nil {
		return err
	}
	_, err = a.apply(ctx, env)
	return err
}

// proposeUsageFlush proposes flush p. Only a proposal that failed is an
// error: a flush the FSM applied and refused would be refused again, so it
// is logged and not kept.
func (a *API) proposeUsageFlush(ctx context.Context, p *fsm.KeyUsageFlush) error {
	env, err := fsm.NewEnvelope(fsm.CmdKeyUsageFlush, a.now(), p)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, a.cfg.ApplyTimeout)
	defer cancel()
	res, err := a.raft.Apply(ctx, env)
	if err != nil {
		return err
	}
	if res.Err != nil {
		a.log.Error("the FSM refused a key usage flush", "err", res.Err, "keys", len(p.Keys))
	}
	return nil
}

// settleUsageFlush, on a coordinator that no longer leads (or below
// fsm.LevelUsageFlush), hands a kept flush's uses back to the recorder,
// which ships them to the leader, once the flush's fate is settled: when
// this replica has applied an entry of a term after the last one it was
// proposed in, every copy of it the log holds is applied here, or none
// ever will be; a proposal Raft had not answered when its wait ended
// (raftnode.InFlightError) is waited for first, as it may be appended
// later, in a later term. Written then, it is dropped; else its uses are
// recorded again. Unsettled, it stays kept (proposed again if this
// coordinator leads again first).
func (a *API) settleUsageFlush() {
	f := &a.usageFlush
	p := f.pending
	if p == nil {
		return
	}
	if f.answered() {
		f.drop()
		return
	}
	if len(f.inFlight) > 0 || a.state.AppliedTerm() <= f.term {
		return
	}
	f.drop()
	if a.state.KeyUsageFlushWritten(p) {
		return
	}
	for _, b := range p.Keys {
		a.Usage.Merge(b)
	}
}
