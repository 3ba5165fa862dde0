package raftnode

import (
	"slices"
	"sync"

	"github.com/hashicorp/raft"
)

// peerHealth follows, on a leader, which members its heartbeats fail to reach
// (hashicorp/raft's FailedHeartbeatObservation and ResumedHeartbeatObservation),
// so a membership change that would leave the cluster without a quorum of
// answering voters can be refused before it is proposed.
type peerHealth struct {
	mu      sync.Mutex
	failing map[raft.ServerID]bool
}

// watch registers the observer on r. The filter does the work and lets no
// observation through, so no channel is needed and none can fill up.
func (p *peerHealth) watch(r *raft.Raft) {
	r.RegisterObserver(raft.NewObserver(nil, false, func(o *raft.Observation) bool {
		p.observe(o.Data)
		return false
	}))
}

func (p *peerHealth) observe(data any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.failing == nil {
		p.failing = map[raft.ServerID]bool{}
	}
	switch o := data.(type) {
	case raft.FailedHeartbeatObservation:
		p.failing[o.PeerID] = true
	case raft.ResumedHeartbeatObservation:
		delete(p.failing, o.PeerID)
	case raft.PeerObservation:
		if o.Removed {
			delete(p.failing, o.Peer.ID)
		}
	case raft.RaftState:
		// A new term's heartbeats start afresh (and only a leader sends any).
		clear(p.failing)
	}
}

// Unreachable lists, on the leader, the members its last heartbeat to failed
// (sorted); nil elsewhere.
func (n *Node) Unreachable() []string {
	if !n.IsLeader() {
		return nil
	}
	n.peers.mu.Lock()
	defer n.peers.mu.Unlock()
	var out []string
	for id := range n.peers.failing {
		out = append(out, string(id))
	}
	slices.Sort(out)
	return out
}
