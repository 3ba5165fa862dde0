package api

import "time"

// Reverse DNS: the reverse zones an operator maps for PowerDNS to serve the
// PTR names of servers' addresses (admin API, hostplanectl reverse-zone).

// Sync states of a PTR name (ServerIP.PTRSync) and of a reverse zone.
const (
	PTRSynced    = "synced"     // PowerDNS serves the recorded name (or its absence)
	PTRPending   = "pending"    // the change waits for PowerDNS (down or not reached yet)
	PTRNotHosted = "not_hosted" // no mapped zone holds the address: the name is only recorded
	// ZoneRemoving: the mapping was removed; the zone is deleted from PowerDNS
	// once it is reachable, then the entry goes.
	ZoneRemoving = "removing"
)

// ReverseZone is a mapped reverse zone.
type ReverseZone struct {
	// Zone is the zone name without trailing dot (100.51.198.in-addr.arpa).
	Zone string `json:"zone"`
	// Prefix is the address range the zone covers (198.51.100.0/24).
	Prefix string `json:"prefix"`
	// Pool is the IP pool the zone serves, if named.
	Pool string `json:"pool,omitempty"`
	// Status is synced, pending or removing.
	Status string `json:"status"`
	// LastError is why the last attempt to reach PowerDNS failed.
	LastError string     `json:"last_error,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	SyncedAt  *time.Time `json:"synced_at,omitempty"`
}

// ReverseZoneRequest maps a reverse zone (POST /admin/reverse-zones).
type ReverseZoneRequest struct {
	Zone string `json:"zone"`
	Pool string `json:"pool,omitempty"`
}
