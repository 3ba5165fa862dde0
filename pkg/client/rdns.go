package client

import (
	"context"

	"github.com/hostplane/hostplane/pkg/api"
)

// ReverseZones lists the mapped reverse zones with their PowerDNS sync state.
func (a *Admin) ReverseZones(ctx context.Context) ([]api.ReverseZone, error) {
	return adminCall[[]api.ReverseZone](ctx, a, "GET", "/admin/reverse-zones", nil)
}

// AddReverseZone maps a reverse zone (in-addr.arpa or ip6.arpa) for PowerDNS
// to serve the PTR names of the addresses in it.
func (a *Admin) AddReverseZone(ctx context.Context, req api.ReverseZoneRequest) (api.ReverseZone, error) {
	return adminCall[api.ReverseZone](ctx, a, "POST", "/admin/reverse-zones", req)
}

// RemoveReverseZone unmaps a reverse zone; the leader deletes it from
// PowerDNS.
func (a *Admin) RemoveReverseZone(ctx context.Context, zone string) (api.ReverseZone, error) {
	return adminCall[api.ReverseZone](ctx, a, "DELETE", "/admin/reverse-zones/"+seg("zone", zone), nil)
}
