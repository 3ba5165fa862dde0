package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
)

// nodeMemo keeps the last decoded form of each node record, keyed by the
// record's exact bytes: placing a server reads every node (on the leader)
// and applying it reads its node (on every replica), and a node record
// (with its certificate) changes only on node events. A read whose bytes
// equal the memo's gets a copy of the memo's node instead of a JSON decode;
// decoding is a function of the bytes, so the result is the same.
var nodeMemo struct {
	sync.Mutex
	m map[string]*memoNode
}

type memoNode struct {
	raw  []byte
	node AgentNode
}

// decodeNode decodes the node record raw of key k, or copies its memo.
func decodeNode(k, raw []byte) (AgentNode, error) {
	nodeMemo.Lock()
	e := nodeMemo.m[string(k)]
	nodeMemo.Unlock()
	if e != nil && bytes.Equal(e.raw, raw) {
		return cloneNode(e.node), nil
	}
	var n AgentNode
	if err := json.Unmarshal(raw, &n); err != nil {
		return AgentNode{}, fmt.Errorf("decode %s/%s: %w", BucketAgentNodes, k, err)
	}
	nodeMemo.Lock()
	if nodeMemo.m == nil {
		nodeMemo.m = map[string]*memoNode{}
	}
	nodeMemo.m[string(k)] = &memoNode{raw: bytes.Clone(raw), node: cloneNode(n)}
	nodeMemo.Unlock()
	return n, nil
}

// cloneNode copies n so that neither copy shares what the other may change.
func cloneNode(n AgentNode) AgentNode {
	n.Roles = slices.Clone(n.Roles)
	n.Bridges = slices.Clone(n.Bridges)
	n.CertDER = slices.Clone(n.CertDER)
	if n.LastSeenAt != nil {
		t := *n.LastSeenAt
		n.LastSeenAt = &t
	}
	if n.RemovedAt != nil {
		t := *n.RemovedAt
		n.RemovedAt = &t
	}
	return n
}
