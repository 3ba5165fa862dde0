package fsm

import (
	"fmt"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/validate"
)

// Every id, time, certificate serial and signature in the agent node
// commands is made by the proposer; apply only checks and records.

// NodeCAInit installs the agent CA; the first one wins (a second is a conflict,
// and the proposer re-reads the installed one).
type NodeCAInit struct {
	CertDER     []byte `json:"cert_der"`
	SealedKey   string `json:"sealed_key"`
	Fingerprint string `json:"fingerprint"`
}

// NodeTokenCreate stores a join token's hash.
type NodeTokenCreate struct {
	ID          string    `json:"id"`
	Hash        string    `json:"hash"`
	NodeID      string    `json:"node_id,omitempty"`
	Description string    `json:"description,omitempty"`
	ExpiresAt   time.Time `json:"expires_at"`
}

// NodeEnrol spends a token and records a node with its first certificate.
type NodeEnrol struct {
	TokenID      string    `json:"token_id"`
	TokenHash    string    `json:"token_hash"`
	NodeID       string    `json:"node_id"`
	Hostname     string    `json:"hostname,omitempty"`
	CertSerial   string    `json:"cert_serial"`
	CertNotAfter time.Time `json:"cert_not_after"`
	CertDER      []byte    `json:"cert_der"`
	KeyHash      string    `json:"key_hash"`
}

// NodeHello records what a node said in its Hello and marks it ready. The leader
// proposes it only when the node was not ready or the Hello changed.
type NodeHello struct {
	NodeID          string                `json:"node_id"`
	CertSerial      string                `json:"cert_serial"`
	Hostname        string                `json:"hostname,omitempty"`
	Roles           []string              `json:"roles"`
	Capacity        api.AgentNodeCapacity `json:"capacity"`
	SoftwareVersion string                `json:"software_version,omitempty"`
	ProtocolVersion uint32                `json:"protocol_version"`
	// Bridges (protocol 1.3) replace the node's list; a 1.2 agent sends none.
	Bridges []string `json:"bridges,omitempty"`
	// HostingConnection is where a hosting node's customers connect, as
	// its agent said (nil: it said nothing, an agent before the field).
	// The leader sets it only from LevelHostingConnection, and apply
	// records it (replacing what the node had) only from that level.
	HostingConnection *api.NodeHostingConnection `json:"hosting_connection,omitempty"`
}

// NodeStates records the liveness transitions (ready ↔ unreachable) one sweep
// of the leader found: one command per sweep, each node at most once.
type NodeStates struct {
	Changes []NodeState `json:"changes"`
}

// NodeState is one node's transition.
type NodeState struct {
	NodeID     string    `json:"node_id"`
	State      string    `json:"state"`
	LastSeenAt time.Time `json:"last_seen_at"`
}

// NodeCertRenew replaces a node's certificate; the previous one stays accepted
// until it expires, so a renewal the node did not store yet does not lock it out.
type NodeCertRenew struct {
	NodeID       string    `json:"node_id"`
	OldSerial    string    `json:"old_serial"`
	CertSerial   string    `json:"cert_serial"`
	CertNotAfter time.Time `json:"cert_not_after"`
}

// NodeRemove revokes a node: its certificates are refused from then on.
type NodeRemove struct {
	NodeID string `json:"node_id"`
}

// NodeSessionAddr records the agent session address of a coordinator, so
// followers can send agents to the leader.
type NodeSessionAddr struct {
	CoordinatorID string `json:"coordinator_id"`
	Addr          string `json:"addr"`
}

func applyNodeCAInit(c *applyCtx, p NodeCAInit) (any, error) {
	if len(p.CertDER) == 0 || p.SealedKey == "" || p.Fingerprint == "" {
		return nil, fmt.Errorf("%w: node ca needs a certificate, a sealed key and a fingerprint", ErrInvalid)
	}
	if c.tx.Bucket(store.BucketNodeCA).Get(store.NodeCAKey) != nil {
		return nil, fmt.Errorf("%w: the node ca exists", ErrConflict)
	}
	ca := store.NodeCA{CertDER: p.CertDER, SealedKey: p.SealedKey, Fingerprint: p.Fingerprint, CreatedAt: c.at}
	return ca.Fingerprint, store.PutJSON(c.tx, store.BucketNodeCA, store.NodeCAKey, ca)
}

func applyNodeTokenCreate(c *applyCtx, p NodeTokenCreate) (any, error) {
	if p.ID == "" || p.Hash == "" || !p.ExpiresAt.After(c.at) {
		return nil, fmt.Errorf("%w: join token needs an id, a hash and a future expiry", ErrInvalid)
	}
	if !c.r.NodeCAExists() {
		return nil, fmt.Errorf("%w: no node ca", ErrInvalid)
	}
	if c.tx.Bucket(store.BucketJoinTokens).Get([]byte(p.ID)) != nil {
		return nil, fmt.Errorf("%w: join token %s exists", ErrConflict, p.ID)
	}
	t := store.JoinToken{ID: p.ID, Hash: p.Hash, NodeID: p.NodeID, Description: p.Description, CreatedAt: c.at, ExpiresAt: p.ExpiresAt}
	return t.ExpiresAt, store.PutJSON(c.tx, store.BucketJoinTokens, []byte(p.ID), t)
}

// ErrTokenRefused is the one error every refused join token gets, so a caller
// learns nothing about which check failed.
var ErrTokenRefused = fmt.Errorf("%w: join token refused (unknown, used, expired or for another node)", ErrInvalid)

// CheckJoinToken is the enrolment check the proposer runs before signing and
// apply runs again at the command's time.
func CheckJoinToken(r store.ReadTx, id, hash, nodeID string, at time.Time) (store.JoinToken, error) {
	t, err := r.JoinToken(id)
	if err != nil {
		return t, ErrTokenRefused
	}
	if t.Hash != hash || t.UsedAt != nil || !at.Before(t.ExpiresAt) || (t.NodeID != "" && t.NodeID != nodeID) {
		return t, ErrTokenRefused
	}
	if r.AgentNodeExists(nodeID) {
		return t, fmt.Errorf("%w: node %s is already enrolled (remove it and use a new node id)", ErrConflict, nodeID)
	}
	return t, nil
}

func applyNodeEnrol(c *applyCtx, p NodeEnrol) (any, error) {
	if p.NodeID == "" || p.CertSerial == "" {
		return nil, fmt.Errorf("%w: enrol needs a node id and a certificate serial", ErrInvalid)
	}
	t, err := CheckJoinToken(c.r, p.TokenID, p.TokenHash, p.NodeID, c.at)
	if err != nil {
		return nil, err
	}
	at := c.at
	t.UsedAt, t.UsedBy = &at, p.NodeID
	n := store.AgentNode{
		AgentNode: api.AgentNode{ID: p.NodeID, State: api.AgentNodeEnrolled, Hostname: p.Hostname, Roles: []string{},
			EnrolledAt: c.at, StateChangedAt: c.at, CertNotAfter: p.CertNotAfter},
		CertSerial: p.CertSerial, TokenID: p.TokenID, KeyHash: p.KeyHash, CertDER: p.CertDER,
	}
	if err := store.PutJSON(c.tx, store.BucketJoinTokens, []byte(t.ID), t); err != nil {
		return nil, err
	}
	return n.AgentNode, store.PutJSON(c.tx, store.BucketAgentNodes, []byte(n.ID), n)
}

// EnrolledWith returns the node a join token enrolled when the same node id,
// token secret and key ask again (the first answer was lost), so the caller
// can hand out the certificate it issued then. ok is false otherwise.
func EnrolledWith(r store.ReadTx, tokenID, hash, nodeID, keyHash string) (store.AgentNode, bool) {
	t, err := r.JoinToken(tokenID)
	if err != nil || t.Hash != hash || t.UsedAt == nil || t.UsedBy != nodeID {
		return store.AgentNode{}, false
	}
	n, err := r.AgentNode(nodeID)
	if err != nil || n.TokenID != tokenID || n.KeyHash == "" || n.KeyHash != keyHash || n.State == api.AgentNodeRemoved || len(n.CertDER) == 0 {
		return store.AgentNode{}, false
	}
	return n, true
}

// CertAccepted reports whether serial is a certificate of n accepted at time at.
func CertAccepted(n store.AgentNode, serial string, at time.Time) bool {
	if n.State == api.AgentNodeRemoved || serial == "" {
		return false
	}
	return serial == n.CertSerial || (serial == n.PrevCertSerial && at.Before(n.PrevCertNotAfter))
}

func loadLiveNode(c *applyCtx, id string) (store.AgentNode, error) {
	n, err := c.r.AgentNode(id)
	if err != nil {
		return n, err
	}
	if n.State == api.AgentNodeRemoved {
		return n, fmt.Errorf("%w: node %s was removed", ErrConflict, id)
	}
	return n, nil
}

func (c *applyCtx) transition(n *store.AgentNode, state string) {
	if n.State != state {
		n.State, n.StateChangedAt = state, c.at
		n.Transitions++
	}
}

// maxNodeBridges bounds the bridges a node may report.
const maxNodeBridges = 64

func applyNodeHello(c *applyCtx, p NodeHello) (any, error) {
	n, err := loadLiveNode(c, p.NodeID)
	if err != nil {
		return nil, err
	}
	if !CertAccepted(n, p.CertSerial, c.at) {
		return nil, fmt.Errorf("%w: node %s certificate is not current", ErrConflict, p.NodeID)
	}
	if p.Roles == nil {
		p.Roles = []string{}
	}
	if len(p.Bridges) > maxNodeBridges {
		return nil, fmt.Errorf("%w: node %s reports %d bridges, at most %d", ErrInvalid, p.NodeID, len(p.Bridges), maxNodeBridges)
	}
	for _, b := range p.Bridges {
		if err := validate.Bridge(b); err != nil {
			return nil, fmt.Errorf("%w: node %s: %s", ErrInvalid, p.NodeID, validate.Reason(err))
		}
	}
	if _, err := setNodeHostingConnection(c, &n, p.HostingConnection); err != nil {
		return nil, err
	}
	n.Hostname, n.Roles, n.Capacity = p.Hostname, p.Roles, p.Capacity
	n.Bridges = p.Bridges
	n.SoftwareVersion, n.ProtocolVersion = p.SoftwareVersion, p.ProtocolVersion
	at := c.at
	n.LastSeenAt = &at
	c.transition(&n, api.AgentNodeReady)
	return n.AgentNode, store.PutJSON(c.tx, store.BucketAgentNodes, []byte(n.ID), n)
}

func applyNodeState(c *applyCtx, p NodeStates) (any, error) {
	// Validate everything before the first write.
	nodes := make([]store.AgentNode, len(p.Changes))
	seen := map[string]bool{}
	for i, ch := range p.Changes {
		if ch.State != api.AgentNodeReady && ch.State != api.AgentNodeUnreachable {
			return nil, fmt.Errorf("%w: node state %q", ErrInvalid, ch.State)
		}
		if seen[ch.NodeID] {
			return nil, fmt.Errorf("%w: node %s twice in one state command", ErrInvalid, ch.NodeID)
		}
		seen[ch.NodeID] = true
		n, err := c.r.AgentNode(ch.NodeID)
		if err != nil {
			return nil, err
		}
		nodes[i] = n
	}
	out := make([]api.AgentNode, 0, len(nodes))
	for i, n := range nodes {
		ch := p.Changes[i]
		// A removed node stays removed, and a node already in the state is left
		// alone (a sweep raced with a hello): no write for either.
		if n.State == api.AgentNodeRemoved || n.State == ch.State {
			continue
		}
		seenAt := ch.LastSeenAt
		n.LastSeenAt = &seenAt
		c.transition(&n, ch.State)
		if err := store.PutJSON(c.tx, store.BucketAgentNodes, []byte(n.ID), n); err != nil {
			return nil, err
		}
		out = append(out, n.AgentNode)
	}
	return out, nil
}

func applyNodeCertRenew(c *applyCtx, p NodeCertRenew) (any, error) {
	n, err := loadLiveNode(c, p.NodeID)
	if err != nil {
		return nil, err
	}
	if p.CertSerial == "" || !CertAccepted(n, p.OldSerial, c.at) {
		return nil, fmt.Errorf("%w: node %s renewal from a certificate that is not current", ErrConflict, p.NodeID)
	}
	n.PrevCertSerial, n.PrevCertNotAfter = n.CertSerial, n.CertNotAfter
	n.CertSerial, n.CertNotAfter = p.CertSerial, p.CertNotAfter
	n.CertDER = nil // the enrolment certificate is no longer the one to hand out
	return n.AgentNode, store.PutJSON(c.tx, store.BucketAgentNodes, []byte(n.ID), n)
}

func applyNodeRemove(c *applyCtx, p NodeRemove) (any, error) {
	n, err := c.r.AgentNode(p.NodeID)
	if err != nil {
		return nil, err
	}
	if n.State == api.AgentNodeRemoved {
		return n.AgentNode, nil
	}
	at := c.at
	n.RemovedAt = &at
	c.transition(&n, api.AgentNodeRemoved)
	return n.AgentNode, store.PutJSON(c.tx, store.BucketAgentNodes, []byte(n.ID), n)
}

func applyNodeSessionAddr(c *applyCtx, p NodeSessionAddr) (any, error) {
	if p.CoordinatorID == "" || p.Addr == "" {
		return nil, fmt.Errorf("%w: session address needs a coordinator id and an address", ErrInvalid)
	}
	return nil, c.tx.Bucket(store.BucketSessionAddrs).Put([]byte(p.CoordinatorID), []byte(p.Addr))
}
