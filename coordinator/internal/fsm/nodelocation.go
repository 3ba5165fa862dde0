package fsm

import (
	"fmt"
	"strings"
	"unicode"

	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
)

// Node locations: command numbers 700-709 (append-only).
const (
	// CmdNodeLocation sets (or clears) the location a node is in: the
	// datacenter or node group an order's location, or a product's
	// locations, place servers in.
	CmdNodeLocation CommandType = 700
)

var nodeLocationHandlers = map[CommandType]handlerFunc{
	CmdNodeLocation: typed(applyNodeLocation),
}

// A command type added after level 1 needs the level of the release that
// added it (level.go): until every coordinator applies it, the route
// answers 503 cluster_upgrading.
func init() { commandLevel[CmdNodeLocation] = 2 }

// NodeLocation puts node NodeID in Location ("" for none).
type NodeLocation struct {
	NodeID   string `json:"node_id"`
	Location string `json:"location"`
}

func applyNodeLocation(c *applyCtx, p NodeLocation) (any, error) {
	if err := CheckLocation(p.Location); err != nil {
		return nil, err
	}
	n, err := c.r.AgentNode(p.NodeID)
	if err != nil {
		return nil, err
	}
	if n.State == api.AgentNodeRemoved {
		return nil, fmt.Errorf("%w: node %s was removed", ErrConflict, n.ID)
	}
	n.Location = p.Location
	return n.AgentNode, store.PutJSON(c.tx, store.BucketAgentNodes, []byte(n.ID), n)
}

// CheckLocation is the rule for a node's location: "" (none) or what a
// product's locations may be (the names orders and products use), 1-64 bytes
// of letters, digits, spaces, '-', '_' and '.', not starting or ending with a
// space.
func CheckLocation(l string) error {
	if l == "" {
		return nil
	}
	if len(l) > 64 || strings.TrimSpace(l) != l {
		return fmt.Errorf("%w: location must be 1-64 bytes, not starting or ending with a space", ErrInvalid)
	}
	for _, r := range l {
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) && !strings.ContainsRune(" -_.", r) {
			return fmt.Errorf("%w: location may hold only letters, digits, spaces, '-', '_' and '.'", ErrInvalid)
		}
	}
	return nil
}
