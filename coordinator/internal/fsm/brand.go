package fsm

import (
	"fmt"

	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/brand"
)

// ClusterBrand is the payload of CmdClusterBrand.
type ClusterBrand struct {
	Brand string `json:"brand"`
}

// applyClusterBrand records p.Brand when none is recorded and answers the
// recorded brand; another brand than the recorded one is a conflict.
func applyClusterBrand(c *applyCtx, p ClusterBrand) (any, error) {
	if _, err := brand.Get(p.Brand); err != nil || p.Brand == "" {
		return nil, fmt.Errorf("%w: brand %q", ErrInvalid, p.Brand)
	}
	have := c.r.ClusterBrand()
	switch {
	case have == "":
		return p.Brand, store.PutClusterBrand(c.tx, p.Brand)
	case have != p.Brand:
		return nil, fmt.Errorf("%w: the cluster's brand is %s, not %s (every coordinator needs --brand %s)", ErrConflict, have, p.Brand, have)
	}
	return have, nil
}
