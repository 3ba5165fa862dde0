package client

import (
	"context"

	"github.com/hostplane/hostplane/pkg/api"
)

// CreateIPPool defines an IP pool; a refused definition is a 400 naming the
// field (cidr, gateway, exclude[i], nodes[i], bridge, resolvers[i],
// prefix_len), an overlapping one names the pool it overlaps.
func (a *Admin) CreateIPPool(ctx context.Context, req api.IPPoolCreateRequest) (api.IPPool, error) {
	return adminCall[api.IPPool](ctx, a, "POST", "/admin/ip-pools", req)
}

// IPPools lists the pools with their usage.
func (a *Admin) IPPools(ctx context.Context) ([]api.IPPool, error) {
	return adminCall[[]api.IPPool](ctx, a, "GET", "/admin/ip-pools", nil)
}

// IPPool shows a pool with its usage and every unit not free.
func (a *Admin) IPPool(ctx context.Context, name string) (api.IPPoolDetail, error) {
	return adminCall[api.IPPoolDetail](ctx, a, "GET", "/admin/ip-pools/"+seg("name", name), nil)
}

// RemoveIPPool removes a pool none of whose units is allocated or reserved.
func (a *Admin) RemoveIPPool(ctx context.Context, name string) (api.IPPool, error) {
	return adminCall[api.IPPool](ctx, a, "POST", "/admin/ip-pools/"+seg("name", name)+"/remove", nil)
}

// ReserveIP reserves the unit of a pool holding ip, so it is never allocated.
func (a *Admin) ReserveIP(ctx context.Context, pool string, req api.IPReserveRequest) (api.IPPoolAddress, error) {
	return adminCall[api.IPPoolAddress](ctx, a, "POST", "/admin/ip-pools/"+seg("pool", pool)+"/reserve", req)
}

// ReleaseIP frees a reserved or quarantined unit at once.
func (a *Admin) ReleaseIP(ctx context.Context, pool, ip string) (api.IPPoolAddress, error) {
	return adminCall[api.IPPoolAddress](ctx, a, "POST", "/admin/ip-pools/"+seg("pool", pool)+"/release", api.IPReserveRequest{IP: ip})
}
