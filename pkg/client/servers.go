package client

import (
	"context"

	"github.com/hostplane/hostplane/pkg/api"
)

// CreateServer places a server on a node with room and starts provisioning it.
// The root password in the answer is shown only this once.
func (a *Admin) CreateServer(ctx context.Context, req api.AdminServerCreateRequest) (api.AdminServerCreated, error) {
	return adminCall[api.AdminServerCreated](ctx, a, "POST", "/admin/servers", req)
}

// Servers lists servers, optionally of one account and/or on one node (a node
// filter lists only servers not terminated).
func (a *Admin) Servers(ctx context.Context, accountID, nodeID string) ([]api.AdminServer, error) {
	q := nonEmpty(map[string]string{"account": accountID, "node": nodeID})
	return adminCall[[]api.AdminServer](ctx, a, "GET", withQuery("/admin/servers", q), nil)
}

// Server shows one server with where it runs.
func (a *Admin) Server(ctx context.Context, id string) (api.AdminServer, error) {
	return adminCall[api.AdminServer](ctx, a, "GET", "/admin/servers/"+seg("id", id), nil)
}

// AgentNodeDetail shows a node with its scheduling state, usage and servers.
func (a *Admin) AgentNodeDetail(ctx context.Context, id string) (api.AdminNodeDetail, error) {
	return adminCall[api.AdminNodeDetail](ctx, a, "GET", "/admin/nodes/"+seg("id", id)+"/detail", nil)
}

func (a *Admin) schedule(ctx context.Context, id, verb string) (api.AdminNodeDetail, error) {
	return adminCall[api.AdminNodeDetail](ctx, a, "POST", "/admin/nodes/"+seg("id", id)+"/"+verb, nil)
}

// CordonNode stops new placements on a node.
func (a *Admin) CordonNode(ctx context.Context, id string) (api.AdminNodeDetail, error) {
	return a.schedule(ctx, id, "cordon")
}

// UncordonNode lets placement use the node again (and ends a drain).
func (a *Admin) UncordonNode(ctx context.Context, id string) (api.AdminNodeDetail, error) {
	return a.schedule(ctx, id, "uncordon")
}

// SetNodeLocation puts the node in location ("" takes it out of any): orders
// for that location, or for a product offered there, are placed on it.
func (a *Admin) SetNodeLocation(ctx context.Context, id, location string) (api.AdminNodeDetail, error) {
	return adminCall[api.AdminNodeDetail](ctx, a, "PUT", "/admin/nodes/"+seg("id", id)+"/location", api.NodeLocationRequest{Location: &location})
}

// DrainNode cordons the node and marks it draining; the answer lists the
// servers still on it.
func (a *Admin) DrainNode(ctx context.Context, id string) (api.AdminNodeDetail, error) {
	return a.schedule(ctx, id, "drain")
}
