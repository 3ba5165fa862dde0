package nodes

import (
	"context"
	"errors"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/session"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/internal/clock"
	"github.com/hostplane/hostplane/pkg/api"
)

// Liveness runs on the leader (a leader job; only with a session listener): it registers this leader's session address,
// then records ready → unreachable (no ping within the grace period) and
// unreachable → ready (pinging again) transitions, one command per transition.
// Pings themselves only touch memory.
func (s *Service) Liveness(ctx context.Context) {
	srv := s.Sessions()
	s.leading.Store(true)
	defer srv.DropAll("coordinator lost leadership")
	defer s.leading.Store(false)
	c := s.cfg
	since := s.now() // nodes get a full grace period from the start of this leadership
	registered := false
	clock.Every(ctx, max(c.PingInterval/2, 50*time.Millisecond), func() {
		if !registered {
			registered = s.registerSessionAddr(ctx) == nil
		}
		s.sweepLiveness(ctx, srv, since)
	})
}

// leaderChangeReconnect is how much longer than the grace period a new
// leader waits before it records a node that has not reached it yet as
// unreachable (a node that held a session with it gets the grace period
// from its last ping, as before). An agent whose coordinator died or
// stopped leading first waits out its read deadline, then may spend a dial
// timeout (3 s by default) on each coordinator that does not answer before
// it finds this one: recorded unreachable meanwhile, a healthy node would
// be refused orders with 409 no_capacity (placement skips it) for those
// seconds, where a ready node not connected yet is a 503 node_reconnecting
// (retry). A node truly gone is recorded unreachable this much later after
// a leader change.
const leaderChangeReconnect = 10 * time.Second

func (s *Service) registerSessionAddr(ctx context.Context) error {
	addr := s.SessionAddr()
	var cur string
	_ = s.deps.State.Read(func(r store.ReadTx) error { cur = r.SessionAddr(s.cfg.ID); return nil })
	if cur == addr {
		return nil
	}
	_, err := s.propose(ctx, fsm.CmdNodeSessionAddr, fsm.NodeSessionAddr{CoordinatorID: s.cfg.ID, Addr: addr})
	if err != nil {
		s.log.Warn("register agent session address: will retry", "err", err)
	}
	return err
}

func (s *Service) sweepLiveness(ctx context.Context, srv *session.Server, since time.Time) {
	grace := s.cfg.Grace
	now := s.now()
	live := srv.Sessions()
	var changes []fsm.NodeState
	_ = s.deps.State.Read(func(r store.ReadTx) error {
		return r.ForEachAgentNode(func(n store.AgentNode) {
			seen, connected := live[n.ID]
			switch {
			case n.State == api.AgentNodeReady:
				last := since
				if n.LastSeenAt != nil && n.LastSeenAt.After(last) {
					last = *n.LastSeenAt
				}
				gone := srv.LastSeen(n.ID)
				if connected && seen.After(last) {
					last = seen
				} else if !connected && gone.After(last) {
					last = gone // the session ended; its last ping still counts
				}
				wait := grace
				if !connected && !gone.After(since) && !last.After(since) {
					wait += leaderChangeReconnect // not heard from since this leader took over
				}
				if now.Sub(last) > wait {
					changes = append(changes, fsm.NodeState{NodeID: n.ID, State: api.AgentNodeUnreachable, LastSeenAt: last.UTC()})
				}
			case n.State == api.AgentNodeUnreachable && connected && now.Sub(seen) <= grace:
				// Pings resumed on a session that went quiet (a new session's
				// hello records ready itself).
				changes = append(changes, fsm.NodeState{NodeID: n.ID, State: api.AgentNodeReady, LastSeenAt: seen.UTC()})
			}
		})
	})
	if len(changes) == 0 {
		return
	}
	// One command per sweep, however many nodes changed (a switch failure can
	// take hundreds of nodes away at once).
	for len(changes) > 0 {
		batch := changes[:min(len(changes), 1000)]
		changes = changes[len(batch):]
		if _, err := s.propose(ctx, fsm.CmdNodeState, fsm.NodeStates{Changes: batch}); err != nil {
			if !errors.Is(err, context.Canceled) {
				s.log.Warn("record node states; will retry on the next sweep", "nodes", len(batch), "err", err)
			}
			return
		}
		for _, ch := range batch {
			s.log.Info("node state changed", "node", ch.NodeID, "state", ch.State, "last_seen", ch.LastSeenAt)
		}
	}
}
