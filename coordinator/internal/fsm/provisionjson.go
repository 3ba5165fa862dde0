package fsm

import (
	"strconv"

	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/internal/plainjson"
	"github.com/hostplane/hostplane/pkg/action"
)

// A placing command with addresses reads the proposer's provision params
// into an action.Provision, fills in the addresses and writes them back
// (primaryAddrs). readProvision and appendProvision do that for the plain
// JSON the proposer writes without reflection: readProvision reads what
// json.Unmarshal reads (or gives up), appendProvision writes what json.Marshal
// writes (or gives up), so the action record is byte for byte what
// encoding/json made of it before (TestProvisionCodecMatchesEncodingJSON and
// its fuzzers).

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

// appendProvision writes json.Marshal(pr) (ok false if a string needs an
// escape).
func appendProvision(pr *action.Provision) ([]byte, bool) {
	b := make([]byte, 0, 256)
	b = append(b, '{')
	for i, key := range provisionKeys {
		switch key {
		case "plan":
			b = append(b, `"plan":{"vcpus":`...)
			b = strconv.AppendUint(b, uint64(pr.Plan.VCPUs), 10)
			b = append(b, `,"memory_mib":`...)
			b = strconv.AppendUint(b, pr.Plan.MemoryMiB, 10)
			b = append(b, `,"disk_gib":`...)
			b = strconv.AppendUint(b, pr.Plan.DiskGiB, 10)
			b = append(b, "},"...)
		case "resolvers", "ssh_keys":
			list := pr.Resolvers
			if key == "ssh_keys" {
				list = pr.SSHKeys
			}
			if len(list) == 0 {
				continue
			}
			b = append(plainjson.AppendKey(b, key), '[')
			for i, s := range list {
				if !plainjson.Plain(s) {
					return nil, false
				}
				if i > 0 {
					b = append(b, ',')
				}
				b = plainjson.AppendString(b, s)
			}
			b = append(b, "],"...)
		default:
			s := *provisionString(pr, i)
			if s == "" && key != "template" {
				continue
			}
			if !plainjson.Plain(s) {
				return nil, false
			}
			b = append(plainjson.AppendString(plainjson.AppendKey(b, key), s), ',')
		}
	}
	b[len(b)-1] = '}' // template is always written, so a ',' is last
	return b, true
}
