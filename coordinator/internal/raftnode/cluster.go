package raftnode

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/hashicorp/raft"
	"github.com/hostplane/hostplane/coordinator/internal/fsm"
)

// Cluster is everything the HTTP layer and the leader jobs need of the Raft
// member; *Node implements it. Code outside this package holds a Cluster, never
// a *raft.Raft: a new need of the consensus layer becomes a method here (and on
// Node), named for what it does for the coordinator.
type Cluster interface {
	Membership

	// Apply proposes a command and waits until it is committed and applied here.
	// When ctx ends first, a proposal still in this member's queue is taken
	// out (the error is ErrWithdrawn too); one handed to Raft may still
	// commit (the error is an *InFlightError, which tells when Raft answers).
	Apply(ctx context.Context, env *fsm.Envelope) (*fsm.Result, error)
	// LinearizableRead returns once a local read is linearizable: this member is
	// the leader, a quorum confirmed it after the call began, and the FSM has
	// applied everything committed before. Concurrent calls share one round.
	LinearizableRead(ctx context.Context) error
	// IsLeader reports whether this member is the leader.
	IsLeader() bool
	// LeaderID is the current leader's server id, or "" if there is none.
	LeaderID() string
	// Term is the current Raft term.
	Term() uint64
	// Status is this member's view of the Raft state.
	Status() Status
	// Barrier waits until every entry committed before it is applied here.
	Barrier(timeout time.Duration) error
	// CommandsApplied reports whether this member's FSM holds every command
	// with a Raft index up to idx (at most the commit index): no-ops and
	// barriers never reach the FSM, so its applied index alone lags behind.
	CommandsApplied(idx uint64) bool
	// CommandsAppliedWithin waits up to d for CommandsApplied(idx): Raft
	// hands committed entries to the FSM asynchronously, so an entry
	// committed an instant ago may still be on its way.
	CommandsAppliedWithin(idx uint64, d time.Duration) bool
	// LeaderCh signals gains and losses of leadership (one consumer only).
	LeaderCh() <-chan bool
	// Restore installs a backup as the cluster's state (leader only).
	Restore(r io.Reader) error
	// PrepareRestore reads and checks a backup without touching the
	// state; its Install is Restore's second half.
	PrepareRestore(r io.Reader) (*PreparedRestore, error)
}

// Membership changes and lists the coordinators in the Raft configuration.
type Membership interface {
	// Join adds a voter (leader only).
	Join(id, raftAddr string) error
	// Remove removes a member (leader only).
	Remove(id string) error
	// Unreachable lists the members the leader's last heartbeat did not
	// reach (leader only; nil elsewhere).
	Unreachable() []string
	// Servers lists the members of the latest configuration.
	Servers() ([]Server, error)
	// TransferLeadership hands leadership to the voter named to, or to the most
	// up-to-date voter when to is "" (leader only), and returns once a new leader
	// took over or the transfer failed.
	TransferLeadership(to string) error
}

// Status is one member's view of the Raft state.
type Status struct {
	State        string // Follower, Candidate, Leader, Shutdown
	LeaderID     string
	Term         uint64
	LastIndex    uint64
	CommitIndex  uint64
	AppliedIndex uint64
	LastContact  time.Time // last contact with the leader (followers)
}

// Server is one member of the Raft configuration.
type Server struct {
	ID       string
	Address  string
	Suffrage string // Voter, Nonvoter, Staging
}

var _ Cluster = (*Node)(nil)

// membershipTimeout bounds a configuration change.
const membershipTimeout = 30 * time.Second

// Join adds a voter (leader only). It fails with ErrNotLeader when this member
// is not, or stops being, the leader before the change commits, or the change
// cannot start within membershipTimeout (the last one not committed: no
// quorum): the same join can be sent again.
func (n *Node) Join(id, raftAddr string) error {
	if err := n.Raft.AddVoter(raft.ServerID(id), raft.ServerAddress(raftAddr), 0, membershipTimeout).Error(); err != nil {
		return fmt.Errorf("add voter %s: %w", id, membershipError(err))
	}
	return nil
}

// Remove removes a member (leader only); errors as Join's. A leader that
// removes itself answers once the change has committed, as for any other
// member, and then shuts its Raft down (hashicorp/raft's ShutdownOnRemove).
func (n *Node) Remove(id string) error {
	err := n.awaitFuture(n.Raft.RemoveServer(raft.ServerID(id), 0, membershipTimeout))
	if errors.Is(err, raft.ErrRaftShutdown) && id == n.ID && !n.closing.Load() {
		// Raft shuts itself down on removal only after the configuration
		// without this member has committed: the removal is done.
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove server %s: %w", id, membershipError(err))
	}
	return nil
}

// awaitFuture is f.Error(), which also ends (ErrRaftShutdown) once Raft has
// shut down. hashicorp/raft v1.7.3 hands a committed configuration change to
// its FSM goroutine to answer; a leader that removed itself shuts down right
// after the commit, and that goroutine may take the shutdown first and never
// answer the change's future, whose Error() then waits for ever (it has no
// shutdown channel). The goroutine left waiting on such a future is the
// price (one per removal of the leader through itself that lost the race).
func (n *Node) awaitFuture(f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			return err
		case <-tick.C:
			if n.Raft.State() != raft.Shutdown {
				continue
			}
			select {
			case err := <-done:
				return err
			default:
				return raft.ErrRaftShutdown
			}
		}
	}
}

// membershipError is a configuration change's error, as ErrNotLeader when
// the change was refused or lost for leadership (leadershipError) or timed out
// waiting to start: a leader whose last change has no quorum to commit is
// as unable to serve as no leader, and a change it lost may or may not commit.
func membershipError(err error) error {
	if leadershipError(err) || errors.Is(err, raft.ErrEnqueueTimeout) {
		return fmt.Errorf("%w: %v", ErrNotLeader, err)
	}
	return err
}

// Servers lists the members of the latest configuration.
func (n *Node) Servers() ([]Server, error) {
	cf := n.Raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return nil, err
	}
	var out []Server
	for _, s := range cf.Configuration().Servers {
		out = append(out, Server{ID: string(s.ID), Address: string(s.Address), Suffrage: s.Suffrage.String()})
	}
	return out, nil
}

// ErrNotVoter is returned by TransferLeadership for a target that is not another
// voter of the cluster.
var ErrNotVoter = errors.New("not another voter of the cluster")

// TransferLeadership hands leadership to the voter named to, or to the most
// up-to-date voter when to is "" (leader only). hashicorp/raft stops taking new
// entries meanwhile and completes the future when the target has won an election
// or the transfer timed out (one election timeout).
func (n *Node) TransferLeadership(to string) error {
	if to == "" {
		if err := n.Raft.LeadershipTransfer().Error(); err != nil {
			return fmt.Errorf("leadership transfer: %w", mapNotLeader(err))
		}
		return n.awaitOtherLeader()
	}
	servers, err := n.Servers()
	if err != nil {
		return err
	}
	for _, s := range servers {
		if s.ID == to && s.Suffrage == raft.Voter.String() && s.ID != n.ID {
			if err := n.Raft.LeadershipTransferToServer(raft.ServerID(s.ID), raft.ServerAddress(s.Address)).Error(); err != nil {
				return fmt.Errorf("leadership transfer to %s: %w", to, mapNotLeader(err))
			}
			return n.awaitOtherLeader()
		}
	}
	return fmt.Errorf("leadership transfer to %q: %w", to, ErrNotVoter)
}

// awaitOtherLeader waits (up to membershipTimeout) until this member has heard
// from the new leader, so that the caller's status names it.
func (n *Node) awaitOtherLeader() error {
	deadline := time.Now().Add(membershipTimeout)
	for {
		if id := n.LeaderID(); id != "" && id != n.ID {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("leadership transfer: no new leader heard of")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// mapNotLeader turns raft's not-leader error into ErrNotLeader.
func mapNotLeader(err error) error {
	if errors.Is(err, raft.ErrNotLeader) {
		return ErrNotLeader
	}
	return err
}

// LeaderID is the current leader's server id, or "".
func (n *Node) LeaderID() string {
	_, id := n.Raft.LeaderWithID()
	return string(id)
}

// Term is the current Raft term.
func (n *Node) Term() uint64 { return n.Raft.CurrentTerm() }

// Status is this member's view of the Raft state.
func (n *Node) Status() Status {
	return Status{
		State: n.Raft.State().String(), LeaderID: n.LeaderID(), Term: n.Raft.CurrentTerm(),
		LastIndex: n.Raft.LastIndex(), CommitIndex: n.Raft.CommitIndex(), AppliedIndex: n.Raft.AppliedIndex(),
		LastContact: n.Raft.LastContact(),
	}
}

// Barrier waits until every entry committed before it is applied here. On a
// leader, a barrier that completes in the term it started in also serves the
// read path (see confirmRead): that term's reads need not commit another.
func (n *Node) Barrier(timeout time.Duration) error {
	term := n.Raft.CurrentTerm()
	if err := n.Raft.Barrier(timeout).Error(); err != nil {
		return err
	}
	if n.Raft.State() == raft.Leader && n.Raft.CurrentTerm() == term {
		n.readTerm.Store(term)
	}
	return nil
}

// LeaderCh signals gains and losses of leadership.
func (n *Node) LeaderCh() <-chan bool { return n.Raft.LeaderCh() }
