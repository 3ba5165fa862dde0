package fsm

import (
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/internal/plainjson"
	"github.com/hostplane/hostplane/pkg/action"
)

// A placing command with addresses reads the proposer's provision params
// into an action.Provision, fills in the addresses and writes them back
// (primaryAddrs). readProvision reads the plain JSON the proposer writes
// without reflection: what json.Unmarshal reads (or gives up); action.Encode
// writes them back as json.Marshal does (its own plain encoder:
// TestEncodeProvisionIsJSONMarshal), so the action record is byte for byte
// what encoding/json made of it before (TestProvisionCodecMatchesEncodingJSON
// and its fuzzer).

// provisionKeys are action.Provision's JSON keys in field order.
var provisionKeys = [...]string{"bridge", "gateway4", "gateway6", "hostname", "ipv4", "ipv6", "mac", "name", "network", "plan", "resolvers", "root_password", "ssh_keys", "template"}

// readProvision reads params in the plain subset with keys in field order.
func readProvision(b []byte) (action.Provision, bool) {
	var pr action.Provision
	rd := plainjson.NewReader(b)
	ok := rd.Object(provisionKeys[:], func(i int) (ok bool) {
		switch provisionKeys[i] {
		case "plan":
			return rd.Object(nodePlanKeys, func(i int) bool {
				return store.ReadPlanSize(rd, i, &pr.Plan.VCPUs, &pr.Plan.MemoryMiB, &pr.Plan.DiskGiB)
			})
		case "resolvers":
			pr.Resolvers, ok = rd.Strings()
		case "ssh_keys":
			pr.SSHKeys, ok = rd.Strings()
		default:
			*provisionString(&pr, i), ok = rd.String()
		}
		return ok
	})
	return pr, ok && rd.End()
}

// nodePlanKeys are api.NodePlan's JSON keys in field order.
var nodePlanKeys = []string{"vcpus", "memory_mib", "disk_gib"}

// provisionString is the string field of provisionKeys[i] (nil for plan,
// resolvers and ssh_keys).
func provisionString(pr *action.Provision, i int) *string {
	return [len(provisionKeys)]*string{0: &pr.Bridge, 1: &pr.Gateway4, 2: &pr.Gateway6, 3: &pr.Hostname, 4: &pr.IPv4,
		5: &pr.IPv6, 6: &pr.MAC, 7: &pr.Name, 8: &pr.Network, 11: &pr.RootPassword, 13: &pr.Template}[i]
}
