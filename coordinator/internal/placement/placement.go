// Package placement chooses the node a new server runs on: a ready, connected,
// uncordoned hypervisor with room for the plan (vCPU with an overcommit ratio,
// memory and disk without) and the template, preferring the most free memory.
package placement

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/hostplane/hostplane/pkg/api"
)

// Candidate is a node as placement sees it.
type Candidate struct {
	Node api.AgentNode
	// Used is what the node's servers (not terminated) take.
	Used api.AgentNodeCapacity
	// Connected: the node holds a live session with the leader.
	Connected bool
	// Templates the node reported; nil when it has not reported any yet.
	Templates []string
	// Unfit, when set, says why the node cannot take the server for a reason
	// outside this package (no IP pool on its bridges).
	Unfit string
}

// Policy holds the overcommit ratio for vCPUs (memory and disk are never
// overcommitted).
type Policy struct {
	CPUOvercommit float64 // default DefaultCPUOvercommit
	// Locations, when set, are the node locations the server may go to (an
	// order's location, or its product's locations); a node elsewhere, or
	// in none, is skipped.
	Locations []string
}

// DefaultCPUOvercommit is the vCPU overcommit of a Policy without one.
const DefaultCPUOvercommit = 4

// Need is what a new server takes.
func Need(p api.ServerPlan) api.AgentNodeCapacity {
	return api.AgentNodeCapacity{VCPUs: p.VCPUs, MemoryBytes: p.MemoryMiB << 20, DiskBytes: p.DiskGiB << 30}
}

// Add sums capacities.
func Add(a, b api.AgentNodeCapacity) api.AgentNodeCapacity {
	return api.AgentNodeCapacity{VCPUs: a.VCPUs + b.VCPUs, MemoryBytes: a.MemoryBytes + b.MemoryBytes, DiskBytes: a.DiskBytes + b.DiskBytes}
}

// Room says why a node of capacity, its servers using used, has no room
// for need with vCPUs overcommitted by overcommit ("" when it fits).
func Room(capacity, used, need api.AgentNodeCapacity, overcommit float64) string {
	after := Add(used, need)
	switch {
	case float64(after.VCPUs) > float64(capacity.VCPUs)*overcommit:
		return fmt.Sprintf("vcpus: %d used of %d (×%.1f overcommit)", used.VCPUs, capacity.VCPUs, overcommit)
	case after.MemoryBytes > capacity.MemoryBytes:
		return fmt.Sprintf("memory: %d MiB free, %d MiB needed", (capacity.MemoryBytes-min(used.MemoryBytes, capacity.MemoryBytes))>>20, need.MemoryBytes>>20)
	case after.DiskBytes > capacity.DiskBytes:
		return fmt.Sprintf("disk: %d GiB free, %d GiB needed", (capacity.DiskBytes-min(used.DiskBytes, capacity.DiskBytes))>>30, need.DiskBytes>>30)
	}
	return ""
}

// Outside says why a node in location loc may not take what is placed in
// locations ("in location fra-1 (not ams-1)", "in no location (not
// ams-1)"), or "" when it may: no locations given, or loc among them. Both
// placements (Choose for servers, the HTTP API's for hosting accounts)
// filter nodes by it.
func Outside(loc string, locations []string) string {
	switch {
	case len(locations) == 0 || slices.Contains(locations, loc):
		return ""
	case loc == "":
		return fmt.Sprintf("in no location (not %s)", strings.Join(locations, ", "))
	}
	return fmt.Sprintf("in location %s (not %s)", loc, strings.Join(locations, ", "))
}

// ErrReconnecting is (wrapped in) Choose's error when no node can take the
// server now but a node that would is ready and only not connected to this
// leader: after a leader change (or a short network loss) its agent holds a
// session again within seconds, so the caller is told to retry, not that
// there is no room. A node that stays away is marked unreachable by the
// liveness job and no longer counts.
var ErrReconnecting = errors.New("a node that can take it is reconnecting")

// Choose returns the best node for plan and template, or an error that says
// why each node was skipped.
func Choose(cands []Candidate, plan api.ServerPlan, template string, pol Policy) (string, error) {
	if pol.CPUOvercommit <= 0 {
		pol.CPUOvercommit = DefaultCPUOvercommit
	}
	need := Need(plan)
	type fit struct {
		id   string
		free uint64
	}
	var fits []fit
	var why []string
	reconnecting := false
	for _, c := range cands {
		n := c.Node
		skip := func(format string, a ...any) { why = append(why, n.ID+": "+fmt.Sprintf(format, a...)) }
		elsewhere := Outside(n.Location, pol.Locations)
		switch {
		case n.State == api.AgentNodeRemoved:
			continue
		case !slices.Contains(n.Roles, "kvm"):
			skip("not a kvm node")
			continue
		case elsewhere != "":
			skip("%s", elsewhere)
			continue
		case n.Cordoned:
			skip("cordoned")
			continue
		case n.State != api.AgentNodeReady || !c.Connected:
			skip("%s", map[bool]string{true: "not connected", false: n.State}[n.State == api.AgentNodeReady])
			if n.State == api.AgentNodeReady && (c.Templates == nil || slices.Contains(c.Templates, template)) && c.Unfit == "" &&
				Room(n.Capacity, c.Used, need, pol.CPUOvercommit) == "" {
				reconnecting = true
			}
			continue
		case c.Templates != nil && !slices.Contains(c.Templates, template):
			skip("no template %q", template)
			continue
		case c.Unfit != "":
			skip("%s", c.Unfit)
			continue
		}
		if why := Room(n.Capacity, c.Used, need, pol.CPUOvercommit); why != "" {
			skip("%s", why)
			continue
		}
		after := Add(c.Used, need)
		fits = append(fits, fit{n.ID, n.Capacity.MemoryBytes - after.MemoryBytes})
	}
	if len(fits) == 0 {
		if len(why) == 0 {
			return "", fmt.Errorf("no node is enrolled")
		}
		if reconnecting {
			return "", fmt.Errorf("%w: %s", ErrReconnecting, strings.Join(why, "; "))
		}
		return "", fmt.Errorf("no node has room: %s", strings.Join(why, "; "))
	}
	sort.SliceStable(fits, func(i, j int) bool {
		if fits[i].free != fits[j].free {
			return fits[i].free > fits[j].free
		}
		return fits[i].id < fits[j].id
	})
	return fits[0].id, nil
}
