package store

import (
	"time"

	"github.com/hostplane/hostplane/pkg/api"
)

// Agent node buckets: the hypervisor/hosting nodes that enrol with a join token
// and hold a session to the leader. (Coordinators are in BucketCluster.)
var (
	BucketAgentNodes   = []byte("agent_nodes")   // nodeID → AgentNode
	BucketJoinTokens   = []byte("join_tokens")   // tokenID → JoinToken (secret hash only)
	BucketNodeCA       = []byte("node_ca")       // "ca" → NodeCA (key sealed with the KEK)
	BucketSessionAddrs = []byte("session_addrs") // coordinator ID → agent session address (host:port)
)

// NodeBuckets are the agent-node buckets.
var NodeBuckets = [][]byte{BucketAgentNodes, BucketJoinTokens, BucketNodeCA, BucketSessionAddrs}

// NodeCAKey is the key of the one CA record in BucketNodeCA.
var NodeCAKey = []byte("ca")

// NodeCA is the coordinators' CA for agent certificates. The private key is
// sealed with the key-encryption key; only coordinators holding the KEK open it.
type NodeCA struct {
	CertDER     []byte    `json:"cert_der"`
	SealedKey   string    `json:"sealed_key"`
	Fingerprint string    `json:"fingerprint"`
	CreatedAt   time.Time `json:"created_at"`
}

// JoinToken is a stored single-use join token: the hash of its secret, never the secret.
type JoinToken struct {
	ID          string     `json:"id"`
	Hash        string     `json:"hash"`
	NodeID      string     `json:"node_id,omitempty"` // if set, only this node id may use it
	Description string     `json:"description,omitempty"`
	CreatedAt   time.Time  `json:"created_at"`
	ExpiresAt   time.Time  `json:"expires_at"`
	UsedAt      *time.Time `json:"used_at,omitempty"`
	UsedBy      string     `json:"used_by,omitempty"`
}

// AgentNode is a stored node: the public view plus its certificate serials.
// LastSeenAt is written only on state transitions; the leader keeps the live value.
type AgentNode struct {
	api.AgentNode
	CertSerial       string    `json:"cert_serial"` // its expiry is AgentNode.CertNotAfter
	PrevCertSerial   string    `json:"prev_cert_serial,omitempty"`
	PrevCertNotAfter time.Time `json:"prev_cert_not_after,omitempty"`
	TokenID          string    `json:"token_id"`
	// KeyHash identifies the key the node enrolled with, and CertDER is the
	// certificate it got (public), so a retried enrolment whose answer was lost
	// gets the same certificate instead of a burnt token.
	KeyHash string `json:"key_hash"`
	CertDER []byte `json:"cert_der,omitempty"`
}
