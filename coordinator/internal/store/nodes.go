package store

import (
	"fmt"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
)

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

// KEKMarkKey is the key of the KEK fingerprint record in BucketNodeCA.
var KEKMarkKey = []byte("kek")

// KEKMark records which key-encryption key seals the cluster's secrets (the
// node CA's key, webhook secrets): an HMAC of a fixed label under the KEK,
// never the key. The first leader records it; every coordinator compares its
// own --webhook-kek-file against it.
type KEKMark struct {
	Fingerprint string    `json:"fingerprint"`
	RecordedBy  string    `json:"recorded_by"` // the coordinator that recorded it
	RecordedAt  time.Time `json:"recorded_at"`
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

// AgentNode loads a node record.
func (r ReadTx) AgentNode(id string) (AgentNode, error) {
	raw := r.tx.Bucket(BucketAgentNodes).Get([]byte(id))
	if raw == nil {
		return AgentNode{}, fmt.Errorf("node %s: %w", id, ErrNotFound)
	}
	return decodeNode([]byte(id), raw)
}

// AgentNodeExists reports whether a node was ever enrolled under id (removed
// nodes included).
func (r ReadTx) AgentNodeExists(id string) bool { return r.has(BucketAgentNodes, []byte(id)) }

// AgentNodes lists every node (removed ones included) in id order.
func (r ReadTx) AgentNodes() ([]AgentNode, error) {
	var out []AgentNode
	err := r.tx.Bucket(BucketAgentNodes).ForEach(func(k, v []byte) error {
		n, err := decodeNode(k, v)
		if err != nil {
			return err
		}
		out = append(out, n)
		return nil
	})
	return out, err
}

// AgentNodeIDs lists the id of every node (removed ones included) in id
// order, without reading the records.
func (r ReadTx) AgentNodeIDs() []string {
	var out []string
	_ = r.tx.Bucket(BucketAgentNodes).ForEach(func(k, _ []byte) error {
		out = append(out, string(k))
		return nil
	})
	return out
}

// ForEachAgentNode visits every node (removed ones included) in id order,
// skipping undecodable records.
func (r ReadTx) ForEachAgentNode(visit func(n AgentNode)) error {
	return r.tx.Bucket(BucketAgentNodes).ForEach(func(k, _ []byte) error {
		if n, err := r.AgentNode(string(k)); err == nil {
			visit(n)
		}
		return nil
	})
}

// JoinToken loads a join token record (its secret's hash, never the secret).
func (r ReadTx) JoinToken(id string) (JoinToken, error) {
	var t JoinToken
	err := r.get(BucketJoinTokens, []byte(id), &t)
	return t, err
}

// NodeCA loads the coordinators' CA for agent certificates, or ErrNotFound
// before it is made.
func (r ReadTx) NodeCA() (NodeCA, error) {
	var ca NodeCA
	err := r.get(BucketNodeCA, NodeCAKey, &ca)
	return ca, err
}

// NodeCAExists reports whether the CA was made.
func (r ReadTx) NodeCAExists() bool { return r.has(BucketNodeCA, NodeCAKey) }

// KEKMark loads the recorded KEK fingerprint, or ErrNotFound before one is recorded.
func (r ReadTx) KEKMark() (KEKMark, error) {
	var m KEKMark
	err := r.get(BucketNodeCA, KEKMarkKey, &m)
	return m, err
}

// SessionAddr is the agent session address a coordinator recorded, or "".
func (r ReadTx) SessionAddr(coordinatorID string) string {
	return string(r.value(BucketSessionAddrs, []byte(coordinatorID)))
}
