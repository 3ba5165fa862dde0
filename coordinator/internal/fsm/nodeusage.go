package fsm

import (
	"bytes"
	"sync"

	"github.com/hostplane/hostplane/coordinator/internal/placement"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
)

// nodeUsage is what the servers of each node use (those in node_servers:
// not terminated), summed from their plans, kept in memory so an order's
// apply-time capacity check and the leader's placement do not decode every
// server of the node. A node's sum is computed from the database on first
// use by the apply path after open or restore, and then kept by it: a server
// created on the node adds its plan, a terminated one takes it away (a
// server's plan and node never change). It is never written to the database,
// so the replicated state is unchanged, and a replica that computed it cold
// decides exactly as one that kept it (TestNodeUsageWarmAndCold).
//
// Only the apply path fills and changes it (Raft applies one batch at a
// time); mu guards the map for NodeUsed, which the API reads.
type nodeUsage struct {
	mu sync.RWMutex
	m  map[string]api.AgentNodeCapacity
}

func newNodeUsage() *nodeUsage { return &nodeUsage{m: map[string]api.AgentNodeCapacity{}} }

// nodeUsed is what the node's servers use, as of this command.
func (c *applyCtx) nodeUsed(nodeID string) (api.AgentNodeCapacity, error) {
	u := c.use
	u.mu.RLock()
	used, ok := u.m[nodeID]
	u.mu.RUnlock()
	if ok {
		return used, nil
	}
	used, err := scanNodeUsed(c, nodeID)
	if err != nil {
		return used, err
	}
	u.mu.Lock()
	u.m[nodeID] = used
	u.mu.Unlock()
	return used, nil
}

// scanNodeUsed sums the plans of the node's servers from the database.
func scanNodeUsed(c *applyCtx, nodeID string) (api.AgentNodeCapacity, error) {
	var used api.AgentNodeCapacity
	prefix := []byte(nodeID + "/")
	cur := c.tx.Bucket(store.BucketNodeServers).Cursor()
	for k, _ := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = cur.Next() {
		var other struct {
			Plan api.ServerPlan `json:"plan"`
		}
		id := k[len(prefix):]
		acc := c.tx.Bucket(store.BucketServerIDs).Get(id)
		if acc == nil {
			continue
		}
		if err := store.GetJSON(c.tx, store.BucketServers, store.OwnedKey(string(acc), string(id)), &other); err != nil {
			return used, err
		}
		used = placement.Add(used, placement.Need(other.Plan))
	}
	return used, nil
}

// nodeServerAdded records that a server of plan joined the node's
// node_servers (a node not summed yet is summed from the database later,
// which then holds it).
func (c *applyCtx) nodeServerAdded(nodeID string, plan api.ServerPlan) {
	c.changeNodeUsed(nodeID, func(used api.AgentNodeCapacity) api.AgentNodeCapacity {
		return placement.Add(used, placement.Need(plan))
	})
}

// nodeServerRemoved records that a server of plan left the node's
// node_servers.
func (c *applyCtx) nodeServerRemoved(nodeID string, plan api.ServerPlan) {
	c.changeNodeUsed(nodeID, func(used api.AgentNodeCapacity) api.AgentNodeCapacity {
		need := placement.Need(plan)
		return api.AgentNodeCapacity{VCPUs: used.VCPUs - need.VCPUs, MemoryBytes: used.MemoryBytes - need.MemoryBytes, DiskBytes: used.DiskBytes - need.DiskBytes}
	})
}

func (c *applyCtx) changeNodeUsed(nodeID string, f func(api.AgentNodeCapacity) api.AgentNodeCapacity) {
	u := c.use
	u.mu.Lock()
	defer u.mu.Unlock()
	if used, ok := u.m[nodeID]; ok {
		u.m[nodeID] = f(used)
	}
	c.useTouched = true
}

// NodeUsed is what the servers of the node use as the apply path keeps it
// (its last applied command), and false when it has not summed the node
// since the database was opened or restored (the caller then sums the
// node's servers itself). Placement reads it; the apply-time check decides.
func (f *FSM) NodeUsed(nodeID string) (api.AgentNodeCapacity, bool) {
	f.mu.RLock()
	u := f.use
	f.mu.RUnlock()
	u.mu.RLock()
	defer u.mu.RUnlock()
	used, ok := u.m[nodeID]
	return used, ok
}

// resetNodeUsage forgets every sum (each is summed again on first use).
func (f *FSM) resetNodeUsage() {
	f.use.mu.Lock()
	clear(f.use.m)
	f.use.mu.Unlock()
}
