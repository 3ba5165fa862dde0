package fsm

import (
	"errors"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
)

// TestNodeLocation: CmdNodeLocation needs semantics level 2; it puts a node in
// a location and takes it out again on every replica alike, keeps the
// location across the node's other changes (cordon), and refuses an unknown
// or removed node and a location outside the rule, changing nothing.
func TestNodeLocation(t *testing.T) {
	h := newWHHarness(t, 2)
	h.must(CmdNodeCAInit, NodeCAInit{CertDER: []byte{1}, SealedKey: "v1.x", Fingerprint: "fp"})
	for i, id := range []string{"hv-1", "hv-2"} {
		tok := NodeTokenCreate{ID: "jt_" + id, Hash: "h" + id, ExpiresAt: h.at.Add(time.Hour)}
		h.must(CmdNodeTokenCreate, tok)
		h.must(CmdNodeEnrol, NodeEnrol{TokenID: tok.ID, TokenHash: tok.Hash, NodeID: id, CertSerial: "s" + string(rune('1'+i)), CertNotAfter: h.at.Add(24 * time.Hour)})
	}
	if _, err := h.apply(CmdNodeLocation, NodeLocation{NodeID: "hv-1", Location: "fra-1"}); err == nil {
		t.Fatal("a node location at semantics level 1 was applied")
	}
	h.must(CmdClusterLevel, ClusterLevel{Level: 2})
	if n := h.must(CmdNodeLocation, NodeLocation{NodeID: "hv-1", Location: "fra-1"}).(api.AgentNode); n.Location != "fra-1" {
		t.Fatalf("hv-1: %+v", n)
	}
	if n := h.must(CmdNodeSchedule, NodeSchedule{NodeID: "hv-1", Cordoned: true}).(api.AgentNode); n.Location != "fra-1" || !n.Cordoned {
		t.Fatalf("hv-1 after cordon: %+v, want it still in fra-1", n)
	}
	before := nodeBucketDump(t, h.fsms[0])
	for _, bad := range []NodeLocation{
		{NodeID: "hv-9", Location: "fra-1"},
		{NodeID: "hv-2", Location: " fra"},
		{NodeID: "hv-2", Location: "fra\n1"},
		{NodeID: "hv-2", Location: "fra/1"},
		{NodeID: "hv-2", Location: string(make([]byte, 65))},
	} {
		if _, err := h.apply(CmdNodeLocation, bad); err == nil {
			t.Errorf("%+v applied", bad)
		}
	}
	h.must(CmdNodeRemove, NodeRemove{NodeID: "hv-2"})
	if _, err := h.apply(CmdNodeLocation, NodeLocation{NodeID: "hv-2", Location: "ist"}); !errors.Is(err, ErrConflict) {
		t.Errorf("a removed node: %v, want a conflict", err)
	}
	if n := h.must(CmdNodeLocation, NodeLocation{NodeID: "hv-1", Location: ""}).(api.AgentNode); n.Location != "" {
		t.Fatalf("hv-1 cleared: %+v", n)
	}
	if string(before) == string(nodeBucketDump(t, h.fsms[0])) {
		t.Fatal("the node bucket did not change with the remove and the clear")
	}
	if a, b := nodeBucketDump(t, h.fsms[0]), nodeBucketDump(t, h.fsms[1]); string(a) != string(b) {
		t.Fatal("replicas differ")
	}
}
