package client

import (
	"context"

	"github.com/hostplane/hostplane/pkg/api"
)

// ServerConsole makes a single-use browser console URL for a running server
// (valid for 60 s).
func (c *Client) ServerConsole(ctx context.Context, id string) (api.ServerConsole, error) {
	return call[api.ServerConsole](ctx, c, "POST", c.serverPath(id, "console"), nil, nil)
}
