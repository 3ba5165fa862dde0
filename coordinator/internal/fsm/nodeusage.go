package fsm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/hostplane/hostplane/coordinator/internal/placement"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
)

// nodeUsage is what the servers of each node use (those in node_servers:
// not terminated), summed from their plans, kept in memory so an order's
// apply-time capacity check and the leader's placement do not decode every
// server of the node. The first time the apply path needs a node's sum
// after open or restore, it sums every node's from the database in one pass
// (complete: a node not in m uses nothing), and then keeps them: a server
// created on a node adds its plan, a terminated one takes it away (a
// server's plan and node never change). It is never written to the
// database, so the replicated state is unchanged, and a replica that
// computed it cold decides exactly as one that kept it
// (TestNodeUsageWarmAndCold).
//
// Only the apply path fills and changes it (Raft applies one batch at a
// time); mu guards it for NodeUsed, which the API reads.
type nodeUsage struct {
	mu       sync.RWMutex
	m        map[string]api.AgentNodeCapacity
	complete bool
}

func newNodeUsage() *nodeUsage { return &nodeUsage{m: map[string]api.AgentNodeCapacity{}} }

// nodeUsed is what the node's servers use, as of this command.
func (c *applyCtx) nodeUsed(nodeID string) (api.AgentNodeCapacity, error) {
	u := c.use
	u.mu.RLock()
	used, complete := u.m[nodeID], u.complete
	u.mu.RUnlock()
	if complete {
		return used, nil
	}
	all, err := scanNodesUsed(c)
	if err != nil {
		// A record that does not decode (never in a sound database):
		// this node alone is summed, as before the sums were kept, and
		// nothing is kept.
		return scanNodeUsed(c, nodeID)
	}
	u.mu.Lock()
	u.m, u.complete = all, true
	u.mu.Unlock()
	return all[nodeID], nil
}

// scanNodesUsed sums the plans of every node's servers from the database.
func scanNodesUsed(c *applyCtx) (map[string]api.AgentNodeCapacity, error) {
	out := map[string]api.AgentNodeCapacity{}
	servers := c.tx.Bucket(store.BucketServers)
	err := c.tx.Bucket(store.BucketNodeServers).ForEach(func(k, _ []byte) error {
		node, id, ok := bytes.Cut(k, []byte("/"))
		if !ok {
			return nil
		}
		acc := store.OwnerOf(c.tx, store.BucketServerIDs, string(id))
		if acc == nil {
			return nil
		}
		var other struct {
			Plan api.ServerPlan `json:"plan"`
		}
		v := servers.Get(store.OwnedKey(string(acc), string(id)))
		if v == nil {
			return fmt.Errorf("server %s: %w", id, store.ErrNotFound)
		}
		if err := json.Unmarshal(v, &other); err != nil {
			return fmt.Errorf("decode server %s: %w", id, err)
		}
		out[string(node)] = placement.Add(out[string(node)], placement.Need(other.Plan))
		return nil
	})
	return out, err
}

// scanNodeUsed sums the plans of one node's servers from the database.
func scanNodeUsed(c *applyCtx, nodeID string) (api.AgentNodeCapacity, error) {
	var used api.AgentNodeCapacity
	prefix := []byte(nodeID + "/")
	cur := c.tx.Bucket(store.BucketNodeServers).Cursor()
	for k, _ := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = cur.Next() {
		var other struct {
			Plan api.ServerPlan `json:"plan"`
		}
		id := k[len(prefix):]
		acc := store.OwnerOf(c.tx, store.BucketServerIDs, string(id))
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
// node_servers (before the nodes are summed nothing is kept: the sum from
// the database later holds it).
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
	if u.complete {
		u.m[nodeID] = f(u.m[nodeID])
	}
	c.useTouched = true
}

// NodeUsed is what the servers of the node use as the apply path keeps it
// (its last applied command), and false when it has not summed the nodes
// since the database was opened or restored (the caller then sums the
// node's servers itself). Placement reads it; the apply-time check decides.
//
// It takes no lock of the FSM's: the placement reads it inside a read
// transaction (FSM.Read), which holds the read side of f.mu, and a second
// RLock waits behind a Restore waiting for f.mu, which waits for that
// transaction to end.
func (f *FSM) NodeUsed(nodeID string) (api.AgentNodeCapacity, bool) {
	u := f.use.Load()
	u.mu.RLock()
	defer u.mu.RUnlock()
	return u.m[nodeID], u.complete
}

// resetNodeUsage forgets every sum (each is summed again on first use).
func (f *FSM) resetNodeUsage() {
	u := f.use.Load()
	u.mu.Lock()
	clear(u.m)
	u.complete = false
	u.mu.Unlock()
}
