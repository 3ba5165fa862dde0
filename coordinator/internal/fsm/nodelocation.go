package fsm

import (
	"fmt"
	"strings"
	"unicode"

	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
)

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
	if err := store.PutJSON(c.tx, store.BucketAgentNodes, []byte(n.ID), n); err != nil {
		return nil, err
	}
	if c.level() >= levelLocationFollowsNode {
		if err := moveNodeResources(c, n.ID, p.Location); err != nil {
			return nil, err
		}
	}
	return n.AgentNode, nil
}

// levelLocationFollowsNode is the semantics level (level.go) from which
// moving a node moves what is on it. CmdNodeLocation itself needs level 2,
// so every replica that applies it does so; the gate says which behaviour
// is the level's.
const levelLocationFollowsNode = 2

// moveNodeResources records location on every server (not terminated) and
// live hosting account on node nodeID, in the command that moves the node:
// a server is where its node is, and GET /v1/servers/{id}, lists and
// anything reading a server's location say so from the move on. A server
// terminated or an account deleted before keeps the location it had then.
func moveNodeResources(c *applyCtx, nodeID, location string) error {
	servers, err := c.r.NodeServers(nodeID)
	if err != nil {
		return err
	}
	for _, s := range servers {
		if s.Location == location {
			continue
		}
		s.Location, s.UpdatedAt = location, c.at
		if err := putServer(c.tx, s); err != nil {
			return err
		}
	}
	for _, h := range c.r.NodeHostingAccounts(nodeID) {
		if h.Location == location {
			continue
		}
		h.Location, h.UpdatedAt = location, c.at
		if err := putHosting(c.tx, h); err != nil {
			return err
		}
	}
	return nil
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
