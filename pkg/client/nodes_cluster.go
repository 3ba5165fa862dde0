package client

import (
	"context"

	"github.com/hostplane/hostplane/pkg/api"
)

// CreateJoinToken makes a single-use node join token (shown only in the answer).
func (a *Admin) CreateJoinToken(ctx context.Context, req api.JoinTokenCreateRequest) (api.JoinTokenCreated, error) {
	return adminCall[api.JoinTokenCreated](ctx, a, "POST", "/admin/nodes/tokens", req)
}

// AgentNodes lists the enrolled nodes.
func (a *Admin) AgentNodes(ctx context.Context) ([]api.AgentNode, error) {
	return adminCall[[]api.AgentNode](ctx, a, "GET", "/admin/nodes", nil)
}

// AgentNode shows one node.
func (a *Admin) AgentNode(ctx context.Context, id string) (api.AgentNode, error) {
	return adminCall[api.AgentNode](ctx, a, "GET", "/admin/nodes/"+seg("id", id), nil)
}

// RemoveAgentNode revokes a node: its certificate is refused from then on.
func (a *Admin) RemoveAgentNode(ctx context.Context, id string) (api.AgentNode, error) {
	return adminCall[api.AgentNode](ctx, a, "POST", "/admin/nodes/"+seg("id", id)+"/remove", nil)
}
