package fsm

import (
	"errors"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
)

// CmdHostingPasswordReset on two replicas: refused below semantics level 2;
// an action whose params carry anything but the target (a password), that
// does not wait for a secret, or is not a password reset is refused with
// nothing written; an accepted one is pending on the account, which is then
// busy; replicas stay byte-identical.
func TestHostingPasswordResetApply(t *testing.T) {
	h := newServerHarness(t)
	deadline := h.at.Add(time.Hour)
	h.must(CmdNodeHello, NodeHello{NodeID: "hv-1", CertSerial: "s1", Roles: []string{"hosting"}, ProtocolVersion: 104})
	h.must(CmdHostingCreate, HostingCreate{Hosting: store.HostingAccount{HostingAccount: api.HostingAccount{ID: "hst_1", Username: "ada",
		Domain: "ada.example", Plan: "hosting-starter", PHPVersion: "8.2"}, AccountID: "acc_1", NodeID: "hv-1"},
		Action: store.Action{Action: api.Action{ID: "act_c", Command: api.ActionHostingCreate, ResourceID: "hst_1"}, NodeID: "hv-1",
			Target: "ada", Deadline: deadline, NeedsSecret: true}})
	h.must(CmdActionFinish, ActionFinish{ID: "act_c", Success: true})
	reset := func(id, params string, mod func(*store.Action)) HostingPasswordReset {
		a := store.Action{Action: api.Action{ID: id, Command: api.ActionHostingPasswordReset, ResourceType: ResourceHosting, ResourceID: "hst_1"},
			AccountID: "acc_1", NodeID: "hv-1", Target: "ada", Params: []byte(params), NeedsSecret: true, Deadline: deadline}
		if mod != nil {
			mod(&a)
		}
		return HostingPasswordReset{Action: a}
	}
	var lvl *LevelError
	if _, err := h.apply(CmdHostingPasswordReset, reset("act_0", `{"target":"both"}`, nil)); !errors.As(err, &lvl) {
		t.Fatalf("at level 1: %v", err)
	}
	h.must(CmdClusterLevel, ClusterLevel{Level: 2})
	before := hostingDump(h.fsms[0])
	for name, p := range map[string]HostingPasswordReset{
		"a password in params":  reset("act_1", `{"target":"both","sftp_password":"Secret1234567890abcd"}`, nil),
		"an unknown target":     reset("act_2", `{"target":"root"}`, nil),
		"no params":             reset("act_3", ``, nil),
		"no secret awaited":     reset("act_4", `{"target":"db"}`, func(a *store.Action) { a.NeedsSecret = false }),
		"another command":       reset("act_5", `{"target":"db"}`, func(a *store.Action) { a.Command = api.ActionHostingSuspend }),
		"another account's":     reset("act_6", `{"target":"db"}`, func(a *store.Action) { a.AccountID = "acc_2" }),
		"another node's target": reset("act_7", `{"target":"db"}`, func(a *store.Action) { a.Target = "bob" }),
	} {
		if _, err := h.apply(CmdHostingPasswordReset, p); !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrNotFound) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if string(hostingDump(h.fsms[0])) != string(before) {
		t.Fatal("a refused reset wrote something")
	}
	out := h.must(CmdHostingPasswordReset, reset("act_8", `{"target":"db"}`, nil)).(api.HostingActionAccepted)
	if out.Action.Status != api.ActionPending || out.Hosting == nil || out.Hosting.ActionID != "act_8" {
		t.Fatalf("accepted %+v", out)
	}
	var busy *ActionBusyError
	if _, err := h.apply(CmdHostingPasswordReset, reset("act_9", `{"target":"sftp"}`, nil)); !errors.As(err, &busy) {
		t.Fatalf("second reset while the first runs: %v", err)
	}
	h.must(CmdActionFinish, ActionFinish{ID: "act_8", Success: true})
	h.replicasSame(hostingDump)
}
