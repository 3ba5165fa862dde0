package clustertest

import (
	"testing"

	"github.com/hostplane/hostplane/coordinator/internal/httpapi"
	"github.com/hostplane/hostplane/tests/framework"
)

// newAPIClient calls /v1 through pkg/client, checking every response against
// the embedded openapi.json.
func newAPIClient(t *testing.T, base string) *framework.API {
	return framework.NewAPI(t, base, httpapi.OpenAPI)
}
