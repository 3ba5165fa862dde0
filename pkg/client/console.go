package client

import (
	"context"

	"github.com/hostplane/hostplane/pkg/api"
)

// ServerConsole makes a single-use browser console URL for a running server
// (valid for 60 s).
func (c *Client) ServerConsole(ctx context.Context, id string) (api.ServerConsole, error) {
	var out api.ServerConsole
	_, err := c.Do(ctx, "POST", c.serverPath(id, "console"), nil, &out, nil)
	return out, err
}
