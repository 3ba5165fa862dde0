package fsm

import (
	"fmt"

	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/brand"
)

// CmdClusterBrand records the cluster's public dialect (pkg/brand). The
// first leader records its --brand; a leader of another brand is refused
// (ErrConflict), so a coordinator started with the wrong --brand learns it
// and refuses to serve instead of answering in another dialect. (Command
// numbers 390–399 are the brand's.)
const CmdClusterBrand CommandType = 390

// ClusterBrand is the payload of CmdClusterBrand.
type ClusterBrand struct {
	Brand string `json:"brand"`
}

var brandHandlers = map[CommandType]handlerFunc{
	CmdClusterBrand: typed(applyClusterBrand),
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
