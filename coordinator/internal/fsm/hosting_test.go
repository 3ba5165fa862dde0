package fsm

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
)

func hostingDump(f *FSM) []byte {
	return bucketDump(f, append(append(store.HostingBuckets, store.BucketActions, store.BucketOpenActions), store.BucketOutbox)...)
}

// A hosting account's life in the FSM: placed only on a hosting node, its
// username and domain unique cluster-wide, one mutating action at a time,
// results applied with hosting.created in the same command, delete frees
// the username and domain.
func TestHostingAccounts(t *testing.T) {
	h := newServerHarness(t)
	deadline := h.at.Add(time.Hour)
	acct := store.HostingAccount{HostingAccount: api.HostingAccount{ID: "hst_1", Username: "ada", Domain: "ada.example",
		Plan: "hosting-starter", PHPVersion: "8.2"}, AccountID: "acc_1", NodeID: "hv-1"}
	create := func(id, user, domain string) HostingCreate {
		a := acct
		a.ID, a.Username, a.Domain = id, user, domain
		return HostingCreate{Hosting: a, Action: store.Action{Action: api.Action{ID: "act_" + id, Command: api.ActionHostingCreate,
			ResourceID: id}, NodeID: "hv-1", Target: user, Deadline: deadline, NeedsSecret: true}}
	}
	// hv-1 has not said it has the hosting role.
	if _, err := h.apply(CmdHostingCreate, create("hst_1", "ada", "ada.example")); !errors.Is(err, ErrConflict) {
		t.Fatalf("create on a node without the hosting role: %v", err)
	}
	h.must(CmdNodeHello, NodeHello{NodeID: "hv-1", CertSerial: "s1", Roles: []string{"kvm", "hosting"}, ProtocolVersion: 103})
	out := h.must(CmdHostingCreate, create("hst_1", "ada", "ada.example")).(api.AdminHostingCreated)
	if out.Hosting.Status != api.HostingProvisioning || out.Action.Status != api.ActionPending || out.Action.ResourceType != ResourceHosting {
		t.Fatalf("created %+v", out)
	}
	for _, c := range []struct {
		p     HostingCreate
		field string
	}{{create("hst_2", "ada", "other.example"), "username"}, {create("hst_3", "bob", "ada.example"), "domain"}} {
		_, err := h.apply(CmdHostingCreate, c.p)
		var fc *FieldConflictError
		if !errors.As(err, &fc) || fc.Field != c.field || !errors.Is(err, ErrConflict) {
			t.Fatalf("duplicate %s: %v", c.field, err)
		}
	}
	act := func(id, cmd string) HostingAction {
		return HostingAction{Action: store.Action{Action: api.Action{ID: id, Command: cmd, ResourceID: "hst_1"}, AccountID: "acc_1",
			NodeID: "hv-1", Target: "ada", Deadline: deadline}}
	}
	// Busy while the create runs; suspending a provisioning account waits.
	var busy *ActionBusyError
	if _, err := h.apply(CmdHostingAction, act("act_s0", api.ActionHostingSuspend)); !errors.As(err, &busy) {
		t.Fatalf("action while creating: %v", err)
	}
	res, _ := json.Marshal(api.NodeOpResult{Hosting: &api.NodeHostingAccount{Username: "ada", PHPVersion: "8.2", DiskBytes: 4096}})
	h.must(CmdActionFinish, ActionFinish{ID: "act_hst_1", Success: true, Result: res})
	evs := outboxEvents(t, h.fsms[0])
	last := evs[len(evs)-1]
	var data map[string]any
	_ = json.Unmarshal(last.Data, &data)
	if last.Type != string(api.EventHostingCreated) || data["hostingId"] != "hst_1" || data["username"] != "ada" ||
		data["domain"] != "ada.example" || data["status"] != api.HostingActive || last.AccountID != "acc_1" {
		t.Fatalf("event %s %s", last.Type, last.Data)
	}
	get := func() store.HostingAccount {
		var x store.HostingAccount
		_ = h.fsms[0].Read(func(r store.ReadTx) (err error) { x, err = r.OwnedHostingAccount("acc_1", "hst_1"); return })
		return x
	}
	if g := get(); g.Status != api.HostingActive || g.Quota.DiskUsedBytes != 4096 || g.ActionID != "" {
		t.Fatalf("after create: %+v", g)
	}
	// Another account cannot act on it.
	other := act("act_x", api.ActionHostingSuspend)
	other.Action.AccountID = "acc_2"
	if _, err := h.apply(CmdHostingAction, other); !errors.Is(err, ErrNotFound) {
		t.Fatalf("another account's action: %v", err)
	}
	// An action for another node or another user (target) is refused, with
	// nothing written.
	before := hostingDump(h.fsms[0])
	for _, mod := range []func(*HostingAction){
		func(p *HostingAction) { p.Action.NodeID = "hv-2" },
		func(p *HostingAction) { p.Action.Target = "bob" },
	} {
		p := act("act_m", api.ActionHostingSuspend)
		mod(&p)
		if _, err := h.apply(CmdHostingAction, p); !errors.Is(err, ErrInvalid) {
			t.Fatalf("an action on node %s for user %s: %v; want it refused as invalid", p.Action.NodeID, p.Action.Target, err)
		}
	}
	if string(hostingDump(h.fsms[0])) != string(before) {
		t.Fatal("an action for another node or user wrote something")
	}
	if _, err := h.apply(CmdHostingAction, act("act_u0", api.ActionHostingUnsuspend)); !errors.Is(err, ErrConflict) {
		t.Fatalf("unsuspend of an active account: %v", err)
	}
	h.must(CmdHostingAction, act("act_s1", api.ActionHostingSuspend))
	h.must(CmdActionFinish, ActionFinish{ID: "act_s1", Success: true})
	if g := get(); g.Status != api.HostingSuspended {
		t.Fatalf("after suspend: %+v", g)
	}
	php := act("act_p1", api.ActionHostingSetPHP)
	php.PHPVersion = "8.3"
	h.must(CmdHostingAction, php)
	h.must(CmdActionFinish, ActionFinish{ID: "act_p1", Success: false, ErrorCode: "invalid_input", ErrorMessage: "not installed"})
	if g := get(); g.PHPVersion != "8.2" || g.Status != api.HostingSuspended {
		t.Fatalf("after a failed php change: %+v", g)
	}
	h.must(CmdHostingAction, act("act_d1", api.ActionHostingDelete))
	h.must(CmdActionFinish, ActionFinish{ID: "act_d1", Success: true})
	if g := get(); g.Status != api.HostingDeleted {
		t.Fatalf("after delete: %+v", g)
	}
	if _, err := h.apply(CmdHostingAction, act("act_s2", api.ActionHostingSuspend)); !errors.Is(err, ErrConflict) {
		t.Fatalf("action on a deleted account: %v", err)
	}
	// The username and domain are free again.
	h.must(CmdHostingCreate, create("hst_4", "ada", "ada.example"))
	// Every replica holds the same state.
	if a, b := hostingDump(h.fsms[0]), hostingDump(h.fsms[1]); string(a) != string(b) {
		t.Fatal("replicas differ")
	}
}
