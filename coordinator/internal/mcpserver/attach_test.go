package mcpserver_test

import (
	"net/http"
	"testing"

	"github.com/hostplane/hostplane/coordinator/internal/mcpserver"
	"github.com/hostplane/hostplane/coordinator/internal/server"
	"github.com/hostplane/hostplane/coordinator/internal/testcluster"
	"github.com/hostplane/hostplane/pkg/brand"
)

// TestToolsOfEveryBrand: Attach builds the tools at the first /mcp request,
// not at start, so a document or route table they cannot be built from
// would only show there. For every brand, the tools build from the
// coordinator's served document and route table, one per route, and /mcp
// answers a request without a bearer 401 (the challenge), not 500.
func TestToolsOfEveryBrand(t *testing.T) {
	for _, name := range brand.Names() {
		t.Run(name, func(t *testing.T) {
			c := testcluster.New(t, 1, func(_ int, cfg *server.Config) { cfg.Brand = name })
			a := c.Nodes[0].Server.API
			tools, err := mcpserver.Generate(a.OpenAPI(), mcpserver.FromRoutes(a.Routes()))
			if err != nil {
				t.Fatalf("tools: %v", err)
			}
			if len(tools.List) != len(a.Routes()) || len(tools.List) < 50 {
				t.Errorf("%d tools for %d routes", len(tools.List), len(a.Routes()))
			}
			resp, err := http.Post(c.URL(0)+"/mcp", "application/json", nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("POST /mcp without a bearer: %s, want 401", resp.Status)
			}
		})
	}
}
