package fsm

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/store"
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

// TestOrderLocationAtApply: a server or hosting order placed on a node in a
// location it allows, whose node was put in another location before the
// order's command applied, is refused at apply as a full node is (a
// NoCapacityError, nothing charged) from semantics level 2; a create
// records its node's location at apply; an order without locations, or
// one at level 1, is applied as before.
func TestOrderLocationAtApply(t *testing.T) {
	h := webHarness(t, 10000)
	h.putVPS2(1000)
	// Level 1: no node is in a location, and an order's locations (an
	// operator's --location, which the API does not gate) are not checked.
	lvl1 := testOrder(1, "vps-2")
	lvl1.Create.Locations = []string{"fra-1"}
	if o := h.must(CmdServerOrder, lvl1).(api.ServerOrder); o.Server.Location != "" {
		t.Fatalf("level 1 order: %+v", o.Server)
	}
	h.must(CmdClusterLevel, ClusterLevel{Level: 2})
	h.must(CmdNodeLocation, NodeLocation{NodeID: "hv-1", Location: "fra-1"})
	in := testOrder(2, "vps-2")
	in.Create.Locations = []string{"fra-1"}
	if o := h.must(CmdServerOrder, in).(api.ServerOrder); o.Server.Location != "fra-1" {
		t.Fatalf("order in fra-1: location %q", o.Server.Location)
	}

	// The operator moves hv-1 to ist-1 after placement chose it for fra-1.
	h.must(CmdNodeLocation, NodeLocation{NodeID: "hv-1", Location: "ist-1"})
	moved := testOrder(3, "vps-2")
	moved.Create.Locations = []string{"fra-1"}
	moved.Create.Server.Location = "fra-1" // what placement saw
	web := testHostingOrder(4, "web-1")
	web.Create.Locations = []string{"fra-1", "fra-2"}
	before, hostingBefore, wallet := orderDump(h.fsms[0]), hostingOrderDump(h.fsms[0]), balance(t, h.fsms[0], "acc_1")
	for name, c := range map[string]struct {
		t    CommandType
		p    any
		want string
	}{
		"server":  {CmdServerOrder, moved, `node hv-1 can no longer take the server: it is in location "ist-1" now, not in fra-1`},
		"hosting": {CmdHostingOrder, web, `node hv-1 can no longer take the hosting account: it is in location "ist-1" now, not in fra-1, fra-2`},
	} {
		_, err := h.apply(c.t, c.p)
		var full *NoCapacityError
		if !errors.As(err, &full) || !errors.Is(err, ErrConflict) || err.Error() != c.want {
			t.Errorf("%s order on a node moved out of its location: %v, want %q", name, err, c.want)
		}
	}
	if !bytes.Equal(before, orderDump(h.fsms[0])) || !bytes.Equal(hostingBefore, hostingOrderDump(h.fsms[0])) || balance(t, h.fsms[0], "acc_1") != wallet {
		t.Fatal("a refused order changed the state")
	}
	h.must(CmdNodeLocation, NodeLocation{NodeID: "hv-1", Location: ""})
	if _, err := h.apply(CmdServerOrder, moved); err == nil || !strings.Contains(err.Error(), "it is in no location now, not in fra-1") {
		t.Errorf("order on a node taken out of every location: %v", err)
	}
	h.must(CmdNodeLocation, NodeLocation{NodeID: "hv-1", Location: "fra-2"})

	// Still in a location it allows: placed, showing the node's location
	// now, not the one placement saw.
	moved.Create.Locations = []string{"fra-1", "fra-2"}
	if o := h.must(CmdServerOrder, moved).(api.ServerOrder); o.Server.Location != "fra-2" {
		t.Errorf("order in fra-1 or fra-2 on a node moved to fra-2: location %q", o.Server.Location)
	}
	if o := h.must(CmdHostingOrder, web).(api.HostingOrder); o.Hosting.Location != "fra-2" || hostingAt(t, h, "hst_4").Location != "fra-2" {
		t.Errorf("hosting order in fra-1 or fra-2 on a node moved to fra-2: location %q", o.Hosting.Location)
	}
	// No locations asked for: anywhere, as before.
	if o := h.must(CmdServerOrder, testOrder(5, "vps-2")).(api.ServerOrder); o.Server.Location != "fra-2" {
		t.Errorf("order without a location: location %q", o.Server.Location)
	}
	if balance(t, h.fsms[0], "acc_1") != wallet-1000-500-1000 {
		t.Errorf("wallet %d after three orders from %d", balance(t, h.fsms[0], "acc_1"), wallet)
	}
	h.replicasSame(orderDump)
	h.replicasSame(hostingOrderDump)
}

// TestNodeMoveMovesWhatIsOnIt: moving a node (CmdNodeLocation) records its
// new location on its servers and live hosting accounts in the same
// command, on every replica alike; clearing it clears theirs. Before, they
// kept the location recorded when they were placed, so GET
// /v1/servers/{id} named a location the server was not in.
func TestNodeMoveMovesWhatIsOnIt(t *testing.T) {
	h := newServerHarness(t)
	h.must(CmdClusterLevel, ClusterLevel{Level: 2})
	h.helloHosting()
	h.must(CmdNodeLocation, NodeLocation{NodeID: "hv-1", Location: "fra-1"})
	deadline := h.at.Add(time.Hour)
	for _, id := range []string{"srv_1", "srv_2"} {
		srv := store.Server{Server: api.Server{ID: id, Label: "web", OSTemplate: "debian-12", OS: "debian"},
			AccountID: "acc_1", NodeID: "hv-1", VMName: "hp-" + id}
		prov := store.Action{Action: api.Action{ID: "act_" + id, Command: api.ActionServerProvision, ResourceID: id},
			NodeID: "hv-1", Target: "hp-" + id, Deadline: deadline}
		h.must(CmdServerCreate, ServerCreate{Server: srv, Action: prov})
		h.must(CmdActionFinish, ActionFinish{ID: "act_" + id, Success: true})
	}
	hst := store.HostingAccount{HostingAccount: api.HostingAccount{ID: "hst_a", Username: "ada", Domain: "ada.example", Plan: "p", PHPVersion: "8.2"},
		AccountID: "acc_2", NodeID: "hv-1"}
	h.must(CmdHostingCreate, HostingCreate{Hosting: hst, Action: store.Action{Action: api.Action{ID: "act_hst_a",
		Command: api.ActionHostingCreate, ResourceID: "hst_a"}, NodeID: "hv-1", Target: "ada", Deadline: deadline, NeedsSecret: true}})
	h.must(CmdActionFinish, ActionFinish{ID: "act_hst_a", Success: true})

	shows := func(want string) {
		t.Helper()
		for i, f := range h.fsms {
			_ = f.Read(func(r store.ReadTx) error {
				for _, id := range []string{"srv_1", "srv_2"} {
					if s, err := r.Server(id); err != nil || s.Location != want {
						t.Errorf("replica %d: %s location %q %v, want %q", i, id, s.Location, err, want)
					}
				}
				if a, err := r.HostingAccountByID("hst_a"); err != nil || a.Location != want {
					t.Errorf("replica %d: hst_a location %q %v, want %q", i, a.Location, err, want)
				}
				return nil
			})
		}
	}
	shows("fra-1") // placed there
	h.must(CmdNodeLocation, NodeLocation{NodeID: "hv-1", Location: "ams-1"})
	shows("ams-1")
	h.must(CmdNodeLocation, NodeLocation{NodeID: "hv-1", Location: ""})
	shows("")
	h.replicasSame(serverDump)
	h.replicasSame(func(f *FSM) []byte { return bucketDump(f, store.HostingBuckets...) })
}
