package api

import "time"

// Agent node states, as the coordinators see them.
const (
	AgentNodeEnrolled    = "enrolled"    // certificate issued, no session yet
	AgentNodeReady       = "ready"       // session up, pinging
	AgentNodeUnreachable = "unreachable" // no ping within the grace period
	AgentNodeRemoved     = "removed"     // revoked: its certificate is refused
)

// AgentNodeCapacity is what a node offers to guests.
type AgentNodeCapacity struct {
	VCPUs       uint32 `json:"vcpus"`
	MemoryBytes uint64 `json:"memory_bytes"`
	DiskBytes   uint64 `json:"disk_bytes"`
}

// AgentNode is a hypervisor or hosting node enrolled with the coordinators.
type AgentNode struct {
	ID              string            `json:"id"`
	State           string            `json:"state"`
	Hostname        string            `json:"hostname,omitempty"`
	Roles           []string          `json:"roles"`
	Capacity        AgentNodeCapacity `json:"capacity"`
	SoftwareVersion string            `json:"software_version,omitempty"`
	ProtocolVersion uint32            `json:"protocol_version,omitempty"`
	EnrolledAt      time.Time         `json:"enrolled_at"`
	StateChangedAt  time.Time         `json:"state_changed_at"`
	// LastSeenAt is the last ping the leader saw (live), or the last recorded one.
	LastSeenAt *time.Time `json:"last_seen_at,omitempty"`
	// Connected is true while the node holds a session to the leader.
	Connected    bool       `json:"connected"`
	CertNotAfter time.Time  `json:"cert_not_after"`
	RemovedAt    *time.Time `json:"removed_at,omitempty"`
	// Transitions counts recorded state changes (one Raft write each).
	Transitions uint64 `json:"transitions"`
	// Cordoned: no new servers are placed on the node. Draining implies it.
	Cordoned bool `json:"cordoned"`
	Draining bool `json:"draining"`
	// Bridges are the Linux bridges guests may join on the node, as its agent
	// reported them (protocol 1.3); placement by bridge reads them.
	Bridges []string `json:"bridges,omitempty"`
	// Location is the datacenter or node group the operator put the node in
	// (hostplanectl node location): an order's location, or its product's
	// locations, place servers only on nodes there. "" for none.
	Location string `json:"location,omitempty"`
	// HostingConnection is where a hosting node's customers connect, as
	// its agent last reported it (from semantics level 7; absent before).
	HostingConnection *NodeHostingConnection `json:"hosting_connection,omitempty"`
}

// JoinTokenCreateRequest asks for a single-use node join token.
type JoinTokenCreateRequest struct {
	// TTLSeconds is the token's lifetime (default 3600, at most 7 days).
	TTLSeconds  int    `json:"ttl_seconds,omitempty"`
	NodeID      string `json:"node_id,omitempty"` // restrict the token to this node id
	Description string `json:"description,omitempty"`
}

// JoinTokenCreated is the token, shown only this once.
type JoinTokenCreated struct {
	ID            string    `json:"id"`
	Token         string    `json:"token"`
	ExpiresAt     time.Time `json:"expires_at"`
	NodeID        string    `json:"node_id,omitempty"`
	CAFingerprint string    `json:"ca_fingerprint"`
}

// NodeLocationRequest is the body of PUT /admin/nodes/{id}/location.
type NodeLocationRequest struct {
	// Location is the node's location ("" for none; required): 1-64 bytes
	// of letters, digits, spaces, '-', '_' and '.', as a product's
	// locations.
	Location *string `json:"location"`
}
