package api

import "time"

// IPPoolCreateRequest is POST /admin/ip-pools: an operator's IP pool. An IPv4
// pool hands out single addresses; an IPv6 pool hands each server its own
// prefix of PrefixLen (64 by default) out of CIDR.
type IPPoolCreateRequest struct {
	Name    string `json:"name"`
	CIDR    string `json:"cidr"`
	Gateway string `json:"gateway"`
	// Exclude lists addresses or CIDRs inside the pool never handed out.
	Exclude []string `json:"exclude,omitempty"`
	// Nodes limits the pool to these nodes (empty: every node).
	Nodes []string `json:"nodes,omitempty"`
	// Bridge is the Linux bridge the pool's guests join; only nodes that
	// report it get addresses of the pool.
	Bridge string `json:"bridge,omitempty"`
	// Resolvers are the DNS resolvers the pool's guests are configured with.
	Resolvers []string `json:"resolvers,omitempty"`
	// PrefixLen is the length of each server's IPv6 prefix (IPv6 pools).
	PrefixLen int `json:"prefix_len,omitempty"`
	// QuarantineSeconds is how long a released address is kept from reuse
	// (default 86400: 24 hours).
	QuarantineSeconds int64 `json:"quarantine_seconds,omitempty"`
}

// IPPoolUsage counts a pool's units (addresses, or prefixes in an IPv6
// pool). Total leaves out the network, broadcast and gateway addresses and
// the excludes; Used counts allocated and reserved units.
type IPPoolUsage struct {
	Total       uint64 `json:"total"`
	Used        uint64 `json:"used"`
	Reserved    uint64 `json:"reserved"`
	Quarantined uint64 `json:"quarantined"`
	Free        uint64 `json:"free"`
}

// IPPool is a pool as the admin API shows it, with its usage now.
type IPPool struct {
	IPPoolCreateRequest
	Version   int         `json:"version"` // 4 or 6
	Usage     IPPoolUsage `json:"usage"`
	CreatedAt time.Time   `json:"created_at"`
}

// IPPoolAddress is one unit of a pool that is not free.
type IPPoolAddress struct {
	Prefix    string     `json:"prefix"`
	Status    string     `json:"status"` // allocated, reserved or quarantined
	ServerID  string     `json:"server_id,omitempty"`
	AccountID string     `json:"account_id,omitempty"`
	Note      string     `json:"note,omitempty"`
	Until     *time.Time `json:"until,omitempty"` // end of the quarantine
}

// IPPoolDetail is GET /admin/ip-pools/:name: the pool and its units in use,
// reserved or in quarantine, by address.
type IPPoolDetail struct {
	IPPool
	Addresses []IPPoolAddress `json:"addresses"`
}

// IPReserveRequest is POST /admin/ip-pools/:name/reserve and …/release: one
// address of the pool (for an IPv6 pool, any address of the prefix).
type IPReserveRequest struct {
	IP   string `json:"ip"`
	Note string `json:"note,omitempty"`
}

// IP pool unit states (IPPoolAddress.Status).
const (
	IPAllocated   = "allocated"
	IPReserved    = "reserved"
	IPQuarantined = "quarantined"
)
