package store

import (
	"encoding/json"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
)

// Server and action buckets.
var (
	BucketServers     = []byte("servers")      // accountID/serverID → Server
	BucketServerIDs   = []byte("server_ids")   // serverID → accountID
	BucketNodeServers = []byte("node_servers") // nodeID/serverID → nil (servers not terminated)
	BucketActions     = []byte("actions")      // actionID → Action
	BucketOpenActions = []byte("open_actions") // actionID → nodeID (pending or running: the dispatcher's work list)
)

// ServerBuckets are the server and action buckets.
var ServerBuckets = [][]byte{BucketServers, BucketServerIDs, BucketNodeServers, BucketActions, BucketOpenActions}

// Server is a stored server: the customer view plus where it runs. Snapshots
// are kept with it (a handful per server).
type Server struct {
	api.Server
	AccountID string               `json:"account_id"`
	NodeID    string               `json:"node_id"`
	VMName    string               `json:"vm_name"`
	Snapshots []api.ServerSnapshot `json:"snapshots,omitempty"`
	// PowerState is the last known libvirt-level state: running or stopped.
	PowerState string `json:"power_state,omitempty"`
	// PTRs are the reverse-DNS names set on the server's addresses: canonical
	// IP → hostname (no trailing dot).
	PTRs map[string]string `json:"ptrs,omitempty"`
}

// Admin is the operator view.
func (s Server) Admin() api.AdminServer {
	return api.AdminServer{Server: s.Server, AccountID: s.AccountID, NodeID: s.NodeID, VMName: s.VMName}
}

// Action is a stored action: the public view plus what the dispatcher needs.
// Params never hold a secret (root passwords travel over the session only).
type Action struct {
	api.Action
	AccountID string          `json:"account_id"`
	NodeID    string          `json:"node_id"`
	Target    string          `json:"target"` // the VM name on the node
	Params    json.RawMessage `json:"params,omitempty"`
	// NeedsSecret: the agent needs secret params only the accepting leader had.
	NeedsSecret bool      `json:"needs_secret,omitempty"`
	Mutating    bool      `json:"mutating"`
	Deadline    time.Time `json:"deadline"`
	Step        string    `json:"step,omitempty"`
	// SnapshotID is the snapshot a snapshot.* action is about.
	SnapshotID string `json:"snapshot_id,omitempty"`
	// Snapshot is the restore point a snapshot.create records on success.
	Snapshot *api.ServerSnapshot `json:"snapshot,omitempty"`
	// Meta holds what the result applies to the server (os, os_template).
	Meta map[string]string `json:"meta,omitempty"`
}

// NodeServerKey is the key of BucketNodeServers.
func NodeServerKey(nodeID, serverID string) []byte { return []byte(nodeID + "/" + serverID) }
