package httpapi

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"sync"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
)

// usageFlushTTL is how long the FSM keeps a usage flush's idempotency record
// (the leader's idempotency sweep removes it after). A flush that failed is
// proposed again only within half of it: the record, should the first
// proposal have committed after all, is then still there to make the second
// a no-op even on a leader whose clock runs ahead by less than the other
// half. Short, as a record is written every flush interval (2 s by default):
// about a thousand small records at a time.
const usageFlushTTL = 30 * time.Minute

// usageFlush is the flush that failed, kept to be proposed again.
type usageFlush struct {
	mu      sync.Mutex // one flush at a time
	pending *fsm.Envelope
}

// FlushUsage (the leader) writes the key usage recorded since the last flush
// through Raft as one command, and returns the proposal's error.
//
// A flush whose proposal fails is not lost: it is proposed again, as it
// was, by the next call, before what was recorded since (which stays in the
// recorder until then). Each flush carries an idempotency record of its own,
// so a proposal that failed after all committed (its answer lost: an apply
// timeout, a leader deposed after it appended the entry) is not written a
// second time; merged into the next flush instead, its use counts would be
// added twice. The kept flush is one command, bounded as any flush is (per
// key a count, the newest use and at most usageEntriesPerFlush log
// entries); while it cannot be written the recorder keeps gathering uses
// with the same bound, so however long the proposals fail, memory grows
// only with the number of keys used. A kept flush older than half of
// usageFlushTTL (this coordinator stopped leading and led again only much
// later) is dropped: its record may be gone, and it may have committed.
func (a *API) FlushUsage(ctx context.Context) error {
	f := &a.usageFlush
	f.mu.Lock()
	defer f.mu.Unlock()
	if p := f.pending; p != nil {
		if a.now().Sub(p.At) > usageFlushTTL/2 {
			a.log.Warn("dropping a key usage flush that failed long ago: whether it was written cannot be told any more", "failed_at", p.At)
			f.pending = nil
		} else {
			if err := a.proposeUsage(ctx, p); err != nil {
				return err
			}
			f.pending = nil
		}
	}
	u := a.Usage.Take()
	if u == nil {
		return nil
	}
	now := a.now()
	env, err := fsm.NewEnvelope(fsm.CmdKeyUsage, now, u)
	if err != nil {
		return err
	}
	var id [16]byte
	_, _ = rand.Read(id[:])
	sum := sha256.Sum256(env.Data)
	env.Idem = &fsm.IdemRequest{Scope: "usage/" + hex.EncodeToString(id[:]), ReqHash: hex.EncodeToString(sum[:]), ExpiresAt: now.Add(usageFlushTTL)}
	if err := a.proposeUsage(ctx, env); err != nil {
		f.pending = env
		return err
	}
	return nil
}

// proposeUsage proposes a usage flush. Only a proposal that failed is an
// error: a command the FSM applied and refused (it cannot be for a key
// usage batch, which skips keys it does not know) would be refused again,
// so it is logged and not kept.
func (a *API) proposeUsage(ctx context.Context, env *fsm.Envelope) error {
	ctx, cancel := context.WithTimeout(ctx, a.cfg.ApplyTimeout)
	defer cancel()
	res, err := a.raft.Apply(ctx, env)
	if err != nil {
		return err
	}
	if res.Err != nil {
		a.log.Error("the FSM refused a key usage flush", "err", res.Err)
	}
	return nil
}
