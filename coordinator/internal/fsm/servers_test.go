package fsm

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
	bolt "go.etcd.io/bbolt"
)

// outboxEvents is every event in the outbox, in order.
func outboxEvents(t *testing.T, f *FSM) []store.Event {
	t.Helper()
	var out []store.Event
	_ = f.View(func(tx *bolt.Tx) error {
		return tx.Bucket(store.BucketOutbox).ForEach(func(_, v []byte) error {
			var e store.Event
			if err := json.Unmarshal(v, &e); err != nil {
				t.Fatal(err)
			}
			out = append(out, e)
			return nil
		})
	})
	return out
}

func outboxTypes(t *testing.T, f *FSM) []string {
	var out []string
	for _, e := range outboxEvents(t, f) {
		out = append(out, e.Type)
	}
	return out
}

// newServerHarness is two replicas with accounts acc_1 and acc_2 and node hv-1
// enrolled.
func newServerHarness(t *testing.T) *whHarness {
	h := newWHHarness(t, 2)
	h.must(CmdAccountCreate, AccountCreate{ID: "acc_1", Email: "a@example.com"})
	h.must(CmdAccountCreate, AccountCreate{ID: "acc_2", Email: "b@example.com"})
	h.must(CmdNodeCAInit, NodeCAInit{CertDER: []byte{1}, SealedKey: "v1.x", Fingerprint: "fp"})
	h.must(CmdNodeTokenCreate, NodeTokenCreate{ID: "jt_1", Hash: "h1", ExpiresAt: h.at.Add(time.Hour)})
	h.must(CmdNodeEnrol, NodeEnrol{TokenID: "jt_1", TokenHash: "h1", NodeID: "hv-1", CertSerial: "s1", CertNotAfter: h.at.Add(24 * time.Hour)})
	return h
}

func serverDump(f *FSM) []byte {
	return bucketDump(f, append(store.ServerBuckets, store.BucketOutbox)...)
}

func TestServerActions(t *testing.T) {
	h := newServerHarness(t)
	deadline := h.at.Add(time.Hour)

	srv := store.Server{Server: api.Server{ID: "srv_1", Label: "web", OSTemplate: "debian-12", OS: "debian"},
		AccountID: "acc_1", NodeID: "hv-1", VMName: "hp-srv-1"}
	prov := store.Action{Action: api.Action{ID: "act_p", Command: api.ActionServerProvision, ResourceID: "srv_1"},
		NodeID: "hv-1", Target: "hp-srv-1", Deadline: deadline}

	// A cordoned node takes no new server.
	h.must(CmdNodeSchedule, NodeSchedule{NodeID: "hv-1", Cordoned: true})
	if _, err := h.apply(CmdServerCreate, ServerCreate{Server: srv, Action: prov}); !errors.Is(err, ErrConflict) {
		t.Fatalf("create on a cordoned node: %v", err)
	}
	n := h.must(CmdNodeSchedule, NodeSchedule{NodeID: "hv-1"}).(api.AgentNode)
	if n.Cordoned || n.Draining {
		t.Fatalf("uncordon: %+v", n)
	}
	created := h.must(CmdServerCreate, ServerCreate{Server: srv, Action: prov}).(api.AdminServerCreated)
	if created.Server.Status != api.ServerProvisioning || created.Action.Status != api.ActionPending || created.Server.ActionID != "act_p" {
		t.Fatalf("created %+v", created)
	}

	act := func(id, cmd string) store.Action {
		return store.Action{Action: api.Action{ID: id, Command: cmd, ResourceID: "srv_1"}, AccountID: "acc_1",
			NodeID: "hv-1", Target: "hp-srv-1", Deadline: deadline, Mutating: true}
	}
	// Provisioning holds the server: a power action is a conflict naming it.
	_, err := h.apply(CmdActionCreate, ActionCreate{Action: act("act_r", api.ActionServerReboot)})
	var busy *ActionBusyError
	if !errors.As(err, &busy) || busy.ActionID != "act_p" || !errors.Is(err, ErrConflict) {
		t.Fatalf("action during provisioning: %v", err)
	}
	// Another account's server is not found.
	other := act("act_x", api.ActionServerStop)
	other.AccountID = "acc_2"
	if _, err := h.apply(CmdActionCreate, ActionCreate{Action: other}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("another account's server: %v", err)
	}

	h.must(CmdActionProgress, ActionProgress{ID: "act_p", Percent: 10, Step: "disk"})
	h.must(CmdActionFinish, ActionFinish{ID: "act_p", Success: true})
	// A repeated result is a no-op.
	before := serverDump(h.fsms[0])
	h.must(CmdActionFinish, ActionFinish{ID: "act_p", Success: false, ErrorCode: "x"})
	if !bytes.Equal(before, serverDump(h.fsms[0])) {
		t.Fatal("a second result changed state")
	}
	var s store.Server
	get := func() store.Server {
		_ = h.fsms[0].View(func(tx *bolt.Tx) (err error) { s, err = store.Read(tx).Server("srv_1"); return })
		return s
	}
	if s := get(); s.Status != api.ServerRunning || s.ActionID != "" {
		t.Fatalf("after provisioning %+v", s)
	}

	// Stop, then a failed start changes nothing but the action.
	h.must(CmdActionCreate, ActionCreate{Action: act("act_s", api.ActionServerStop)})
	h.must(CmdActionFinish, ActionFinish{ID: "act_s", Success: true})
	if s := get(); s.Status != api.ServerStopped {
		t.Fatalf("after stop %+v", s)
	}
	h.must(CmdActionCreate, ActionCreate{Action: act("act_b", api.ActionServerStart)})
	a := h.must(CmdActionsFinished, ActionsFinished{Results: []ActionFinish{{ID: "act_b", ErrorCode: "node_unreachable", ErrorMessage: "away"}, {ID: "act_gone"}}}).([]api.Action)
	if len(a) != 1 || a[0].Status != api.ActionFailed || a[0].Error.Code != "node_unreachable" {
		t.Fatalf("deadline result %+v", a)
	}
	if s := get(); s.Status != api.ServerStopped || s.ActionID != "" {
		t.Fatalf("after a failed start %+v", s)
	}

	// Snapshots: create, a duplicate name, revert restores the captured state, delete.
	sc := act("act_sc", api.ActionSnapshotCreate)
	sc.Snapshot = &api.ServerSnapshot{ID: "snp_1", Name: "before"}
	h.must(CmdActionCreate, ActionCreate{Action: sc})
	res, _ := json.Marshal(api.NodeOpResult{Snapshot: &api.NodeSnapshot{Name: "snp-1", State: "shutoff"}})
	h.must(CmdActionFinish, ActionFinish{ID: "act_sc", Success: true, Result: res})
	if s := get(); len(s.Snapshots) != 1 || s.Snapshots[0].State != api.ServerStopped {
		t.Fatalf("after snapshot %+v", s.Snapshots)
	}
	dup := act("act_sc2", api.ActionSnapshotCreate)
	dup.Snapshot = &api.ServerSnapshot{ID: "snp_2", Name: "before"}
	if _, err := h.apply(CmdActionCreate, ActionCreate{Action: dup}); !errors.Is(err, ErrConflict) {
		t.Fatalf("duplicate snapshot name: %v", err)
	}
	h.must(CmdActionCreate, ActionCreate{Action: act("act_on", api.ActionServerStart)})
	h.must(CmdActionFinish, ActionFinish{ID: "act_on", Success: true})
	rv := act("act_rv", api.ActionSnapshotRevert)
	rv.SnapshotID = "snp_1"
	h.must(CmdActionCreate, ActionCreate{Action: rv})
	h.must(CmdActionFinish, ActionFinish{ID: "act_rv", Success: true})
	if s := get(); s.Status != api.ServerStopped {
		t.Fatalf("after revert to a stopped snapshot %+v", s)
	}
	missing := act("act_sd0", api.ActionSnapshotDelete)
	missing.SnapshotID = "snp_9"
	if _, err := h.apply(CmdActionCreate, ActionCreate{Action: missing}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete of an unknown snapshot: %v", err)
	}
	sd := act("act_sd", api.ActionSnapshotDelete)
	sd.SnapshotID = "snp_1"
	h.must(CmdActionCreate, ActionCreate{Action: sd})
	h.must(CmdActionFinish, ActionFinish{ID: "act_sd", Success: true})
	if s := get(); len(s.Snapshots) != 0 {
		t.Fatalf("after delete %+v", s.Snapshots)
	}
	// A snapshot records the power state the agent captured, not the one the
	// coordinator last saw: the server is stopped here, the guest was running.
	live := act("act_sc3", api.ActionSnapshotCreate)
	live.Snapshot = &api.ServerSnapshot{ID: "snp_3", Name: "live"}
	h.must(CmdActionCreate, ActionCreate{Action: live})
	res, _ = json.Marshal(api.NodeOpResult{Snapshot: &api.NodeSnapshot{Name: "snp-3", State: "running"}})
	h.must(CmdActionFinish, ActionFinish{ID: "act_sc3", Success: true, Result: res})
	if s := get(); s.Status != api.ServerStopped || len(s.Snapshots) != 1 || s.Snapshots[0].State != api.ServerRunning {
		t.Fatalf("a snapshot of a running guest on a server seen stopped: %+v %+v", s.Status, s.Snapshots)
	}

	// Reinstall applies the new template; a guest that powered off is observed.
	ri := act("act_ri", api.ActionServerReinstall)
	ri.Meta = map[string]string{"os_template": "ubuntu-24.04", "os": "ubuntu"}
	h.must(CmdActionCreate, ActionCreate{Action: ri})
	h.must(CmdActionFinish, ActionFinish{ID: "act_ri", Success: true})
	if s := get(); s.OSTemplate != "ubuntu-24.04" || s.OS != "ubuntu" || s.Status != api.ServerRunning {
		t.Fatalf("after reinstall %+v", s)
	}
	if n := h.must(CmdServerObserved, ServerObserved{Changes: []ServerPower{{ServerID: "srv_1", PowerState: "shutoff"}}}).(int); n != 1 {
		t.Fatalf("observed %d changes", n)
	}
	if s := get(); s.Status != api.ServerStopped {
		t.Fatalf("after observed power-off %+v", s)
	}
	h.must(CmdServerLabel, ServerLabel{AccountID: "acc_1", ServerID: "srv_1", Label: "db"})
	if _, err := h.apply(CmdServerLabel, ServerLabel{AccountID: "acc_2", ServerID: "srv_1", Label: "x"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("label of another account's server: %v", err)
	}

	// Terminate: the node no longer lists it, and nothing more can be done.
	h.must(CmdActionCreate, ActionCreate{Action: act("act_t", api.ActionServerTerminate)})
	h.must(CmdActionFinish, ActionFinish{ID: "act_t", Success: true})
	_ = h.fsms[0].View(func(tx *bolt.Tx) error {
		if ss, _ := store.Read(tx).NodeServers("hv-1"); len(ss) != 0 {
			t.Errorf("terminated server still on the node: %+v", ss)
		}
		if open, _ := store.Read(tx).OpenActions(); len(open) != 0 {
			t.Errorf("open actions left: %+v", open)
		}
		return nil
	})
	if s := get(); s.Status != api.ServerTerminated || s.TerminatedAt == nil || s.Label != "db" {
		t.Fatalf("after terminate %+v", s)
	}
	if _, err := h.apply(CmdActionCreate, ActionCreate{Action: act("act_z", api.ActionServerStart)}); !errors.Is(err, ErrConflict) {
		t.Fatalf("action on a terminated server: %v", err)
	}

	want := []string{"server.created", "server.power.changed", "server.power.changed", "server.reinstalled", "server.terminated"}
	got := outboxTypes(t, h.fsms[0])
	if len(got) != len(want) {
		t.Fatalf("outbox %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("outbox %v, want %v", got, want)
		}
	}
	h.replicasSame(serverDump)
}

// TestNodeTakesNoNewWork: a cordoned or removed node takes no new server
// and no new hosting account; each refusal is a conflict that names the
// node and what it does not take (a server's, which of the two it is).
func TestNodeTakesNoNewWork(t *testing.T) {
	h := newServerHarness(t)
	deadline := h.at.Add(time.Hour)
	h.must(CmdNodeHello, NodeHello{NodeID: "hv-1", CertSerial: "s1", Roles: []string{"kvm", "hosting"}, ProtocolVersion: 103})
	srv := ServerCreate{Server: store.Server{Server: api.Server{ID: "srv_1", Label: "web", OSTemplate: "debian-12", OS: "debian"},
		AccountID: "acc_1", NodeID: "hv-1", VMName: "hp-srv-1"},
		Action: store.Action{Action: api.Action{ID: "act_p", Command: api.ActionServerProvision, ResourceID: "srv_1"},
			NodeID: "hv-1", Target: "hp-srv-1", Deadline: deadline}}
	hst := HostingCreate{Hosting: store.HostingAccount{HostingAccount: api.HostingAccount{ID: "hst_1", Username: "ada",
		Domain: "ada.example", Plan: "hosting-starter", PHPVersion: "8.2"}, AccountID: "acc_1", NodeID: "hv-1"},
		Action: store.Action{Action: api.Action{ID: "act_hst_1", Command: api.ActionHostingCreate, ResourceID: "hst_1"},
			NodeID: "hv-1", Target: "ada", Deadline: deadline, NeedsSecret: true}}
	refused := func(state string) {
		t.Helper()
		for _, c := range []struct {
			cmd  CommandType
			p    any
			want string
		}{
			{CmdServerCreate, srv, "node hv-1 takes no new servers (" + state + ")"},
			{CmdHostingCreate, hst, "node hv-1 takes no new hosting accounts"},
		} {
			_, err := h.apply(c.cmd, c.p)
			if !errors.Is(err, ErrConflict) || err.Error() != "conflict: "+c.want {
				t.Errorf("command %d on a %s node: %v, want the conflict %q", c.cmd, state, err, "conflict: "+c.want)
			}
		}
	}
	h.must(CmdNodeSchedule, NodeSchedule{NodeID: "hv-1", Cordoned: true})
	refused("cordoned")
	h.must(CmdNodeSchedule, NodeSchedule{NodeID: "hv-1"})
	h.must(CmdNodeRemove, NodeRemove{NodeID: "hv-1"})
	refused("removed")
}
