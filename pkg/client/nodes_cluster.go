package client

import (
	"context"
	"net/url"

	"github.com/hostplane/hostplane/pkg/api"
)

// CreateJoinToken makes a single-use node join token (shown only in the answer).
func (a *Admin) CreateJoinToken(ctx context.Context, req api.JoinTokenCreateRequest) (api.JoinTokenCreated, error) {
	var out api.JoinTokenCreated
	err := a.Do(ctx, "POST", "/admin/nodes/tokens", req, &out)
	return out, err
}

// AgentNodes lists the enrolled nodes.
func (a *Admin) AgentNodes(ctx context.Context) ([]api.AgentNode, error) {
	var out []api.AgentNode
	err := a.Do(ctx, "GET", "/admin/nodes", nil, &out)
	return out, err
}

// AgentNode shows one node.
func (a *Admin) AgentNode(ctx context.Context, id string) (api.AgentNode, error) {
	var out api.AgentNode
	err := a.Do(ctx, "GET", "/admin/nodes/"+url.PathEscape(id), nil, &out)
	return out, err
}

// RemoveAgentNode revokes a node: its certificate is refused from then on.
func (a *Admin) RemoveAgentNode(ctx context.Context, id string) (api.AgentNode, error) {
	var out api.AgentNode
	err := a.Do(ctx, "POST", "/admin/nodes/"+url.PathEscape(id)+"/remove", nil, &out)
	return out, err
}
