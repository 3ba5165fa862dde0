package httpapi

import (
	"bytes"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/ids"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/action"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// hostingAction opens a hosting action of command on hst (unfinished).
func (s *srvAPI) hostingAction(acc, hst, user, command string) string {
	s.t.Helper()
	now := time.Now()
	id := ids.New("act", now)
	s.apply(fsm.CmdHostingAction, fsm.HostingAction{Action: store.Action{Action: api.Action{ID: id, Command: command,
		ResourceType: fsm.ResourceHosting, ResourceID: hst}, AccountID: acc, NodeID: "hv-web", Target: user, Params: []byte("{}"),
		Deadline: now.Add(time.Hour)}})
	return id
}

func (s *srvAPI) secretCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.secrets)
}

// TestHostingPasswordReset: the new passwords (20 characters, as a hosting
// order makes them) are in the 202 only (no-store) and in the dispatcher's
// secret for the action; the stored action holds the target alone; target
// db makes a database password only; a retry while it runs is a 409 naming
// it, leaving no secret behind; no password is in the Raft log, a Raft
// snapshot (the FSM) or the coordinator's log.
func TestHostingPasswordReset(t *testing.T) {
	s := newSrvAPI(t)
	s.apply(fsm.CmdClusterLevel, fsm.ClusterLevel{Level: 2})
	var logged framework.SyncBuilder // the handlers may write from several goroutines
	s.a.log = slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelDebug}))
	acc, key := s.account(api.ScopeHostingRead, api.ScopeHostingWrite)
	hst := s.hostingAccount(acc, "ada", "ada.hosting.test")
	path := "/v1/hosting/" + hst + "/password-reset"

	r := s.call(key, "POST", path, "")
	act := actionID(t, r)
	sftp, _ := r.m["sftp_password"].(string)
	db, _ := r.m["db_password"].(string)
	if len(sftp) != passwordLength || len(db) != passwordLength || sftp == db || r.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("reset: %d %v %s", r.status, r.header, r.body)
	}
	if sec := s.secret(act); len(sec) != 2 || sec[action.SecretSFTPPassword] != sftp || sec[action.SecretDBPassword] != db {
		t.Fatalf("dispatcher secret %v", sec)
	}
	if h, _ := r.m["hosting"].(map[string]any); h["action_id"] != act || h["id"] != hst || bytes.Contains(r.body, []byte("hv-web")) {
		t.Fatalf("hosting view: %s", r.body)
	}
	var stored store.Action
	_ = s.node.FSM.Read(func(r store.ReadTx) (err error) { stored, err = r.Action(act); return })
	if string(stored.Params) != `{"target":"both"}` || !stored.NeedsSecret || stored.Command != api.ActionHostingPasswordReset || stored.Target != "ada" {
		t.Fatalf("stored action %+v %s", stored, stored.Params)
	}
	// A retry while it runs: 409 naming it; nothing new stored or handed out.
	before, secrets := s.actionCount(), s.secretCount()
	if b := s.call(key, "POST", path, `{"target":"sftp"}`); b.status != 409 || b.code() != "action_in_progress" || !strings.Contains(b.msg(), act) {
		t.Fatalf("reset while busy: %d %s", b.status, b.body)
	}
	if s.actionCount() != before || s.secretCount() != secrets {
		t.Fatal("a refused reset stored an action or left a secret")
	}
	s.finish(act, true)
	if d := s.call(key, "GET", "/v1/hosting/"+hst, ""); d.status != 200 || d.m["status"] != api.HostingActive || d.m["action_id"] != nil {
		t.Fatalf("after the reset: %s", d.body)
	}

	r2 := s.call(key, "POST", path, `{"target":"db"}`)
	act2 := actionID(t, r2)
	db2, _ := r2.m["db_password"].(string)
	if len(db2) != passwordLength || db2 == db || r2.m["sftp_password"] != nil {
		t.Fatalf("target db: %s", r2.body)
	}
	if sec := s.secret(act2); len(sec) != 1 || sec[action.SecretDBPassword] != db2 {
		t.Fatalf("target db secret %v", sec)
	}
	s.finish(act2, true)
	r3 := s.call(key, "POST", path, `{}`)
	act3 := actionID(t, r3)
	sftp3, _ := r3.m["sftp_password"].(string)
	db3, _ := r3.m["db_password"].(string)
	if len(sftp3) != passwordLength || len(db3) != passwordLength {
		t.Fatalf("empty object: %s", r3.body)
	}
	s.finish(act3, true)
	r4 := s.call(key, "POST", path, `{"target":"sftp"}`)
	sftp4, _ := r4.m["sftp_password"].(string)
	if len(sftp4) != passwordLength || r4.m["db_password"] != nil {
		t.Fatalf("target sftp: %s", r4.body)
	}

	s.finish(actionID(t, r4), true)

	// An Idempotency-Key is not honoured (as on the server reset): no
	// replay without the passwords; a repeat makes a new action and new
	// passwords, and the first are replaced.
	r5 := s.call(key, "POST", path, `{"target":"db"}`, "Idempotency-Key", "pw-1")
	act5 := actionID(t, r5)
	s.finish(act5, true)
	r6 := s.call(key, "POST", path, `{"target":"db"}`, "Idempotency-Key", "pw-1")
	act6 := actionID(t, r6)
	if r6.header.Get("Idempotent-Replayed") != "" || act6 == act5 || r6.m["db_password"] == nil || r6.m["db_password"] == r5.m["db_password"] {
		t.Fatalf("repeat with the same Idempotency-Key: %v %s / %s", r6.header, r6.body, r5.body)
	}
	db5, _ := r5.m["db_password"].(string)
	db6, _ := r6.m["db_password"].(string)

	noPlaintextOnDisk(t, s.whAPI, "a hosting password is stored in %s", sftp, db, db2, sftp3, db3, sftp4, db5, db6)
	log := logged.String()
	if !strings.Contains(log, "hosting password reset") {
		t.Fatalf("the reset was not logged:\n%s", log)
	}
	for _, pw := range []string{sftp, db, db2, sftp3, db3, sftp4, db5, db6} {
		if strings.Contains(log, pw) {
			t.Fatalf("a password is in the coordinator's log:\n%s", log)
		}
	}
}

// TestHostingPasswordResetRefusals: bad bodies are a 400 naming the field,
// a key without hosting:write a 403, another account's (or a malformed) id
// a 404, and a suspended, provisioning, failed, deleting or deleted account
// a 409 with its code; none stores an action or leaves a secret.
func TestHostingPasswordResetRefusals(t *testing.T) {
	s := newSrvAPI(t)
	acc, key := s.account(api.ScopeHostingRead, api.ScopeHostingWrite, api.ScopeHostingDestroy)
	hst := s.hostingAccount(acc, "ada", "ada.hosting.test")
	path := "/v1/hosting/" + hst + "/password-reset"
	before := s.actionCount()
	// A cluster whose coordinators do not all apply the command yet (level
	// 1): 503 cluster_upgrading, nothing stored, no secret left.
	if r := s.call(key, "POST", path, ""); r.status != 503 || r.code() != "cluster_upgrading" || s.actionCount() != before || s.secretCount() != 0 {
		t.Fatalf("reset at level 1: %d %s (secrets %d)", r.status, r.body, s.secretCount())
	}
	s.apply(fsm.CmdClusterLevel, fsm.ClusterLevel{Level: 2})
	check := func(what string, r reply, status int, code, inMsg string) {
		t.Helper()
		if r.status != status || code != "" && r.code() != code || !strings.Contains(r.msg(), inMsg) {
			t.Errorf("%s: %d %s", what, r.status, r.body)
		}
		if s.actionCount() != before || s.secretCount() != 0 {
			t.Fatalf("%s: stored an action or left a secret", what)
		}
	}
	for _, body := range []string{`{"target":"root"}`, `{"target":"SFTP"}`, `{"target":"sftp;db"}`, `{"target":""}x`, `{"target":1}`, `{"target":"both","password":"mine"}`, `[]`, `"both"`} {
		r := s.call(key, "POST", path, body)
		if r.status != 400 || !strings.Contains(r.msg(), "target") && !strings.Contains(r.msg(), "password") && !strings.Contains(strings.ToLower(r.msg()), "json") {
			t.Errorf("body %s: %d %s", body, r.status, r.body)
		}
		if s.actionCount() != before || s.secretCount() != 0 {
			t.Fatalf("body %s stored an action or left a secret", body)
		}
	}
	check("target root", s.call(key, "POST", path, `{"target":"root"}`), 400, "invalid_field", `"target"`)

	_, readOnly := s.account(api.ScopeHostingRead)
	check("hosting:read key", s.call(readOnly, "POST", path, ""), 403, "missing_scope", "hosting:write")
	_, serversKey := s.account(allServerScopes...)
	check("servers:write key", s.call(serversKey, "POST", path, ""), 403, "missing_scope", "hosting:write")

	_, other := s.account(api.ScopeHostingRead, api.ScopeHostingWrite)
	check("another account", s.call(other, "POST", path, ""), 404, "not_found", "")
	check("another account, bad body", s.call(other, "POST", path, `{"target":"root"}`), 404, "not_found", "")
	check("malformed id", s.call(key, "POST", "/v1/hosting/hst_nope/password-reset", ""), 404, "not_found", "")

	// Suspended (by its owner): 409 suspended, until unsuspended.
	susp := s.hostingAction(acc, hst, "ada", api.ActionHostingSuspend)
	s.finish(susp, true)
	before = s.actionCount()
	check("suspended", s.call(key, "POST", path, ""), 409, "suspended", "unsuspend")
	// The FSM refuses it too (a reset committed by a leader that read the
	// account before the suspension).
	env, _ := fsm.NewEnvelope(fsm.CmdHostingPasswordReset, time.Now(), fsm.HostingPasswordReset{Action: store.Action{
		Action:    api.Action{ID: ids.New("act", time.Now()), Command: api.ActionHostingPasswordReset, ResourceType: fsm.ResourceHosting, ResourceID: hst},
		AccountID: acc, NodeID: "hv-web", Target: "ada", Params: []byte(`{"target":"both"}`), NeedsSecret: true, Deadline: time.Now().Add(time.Hour)}})
	if _, err := s.a.Apply(t.Context(), env); err == nil {
		t.Fatal("the FSM opened a reset on a suspended account")
	} else if ae, _ := toAPIError(err); ae.StatusCode != 409 || ae.Code != "suspended" {
		t.Fatalf("FSM refusal of a suspended account: %v", err)
	}
	unsusp := s.hostingAction(acc, hst, "ada", api.ActionHostingUnsuspend)
	s.finish(unsusp, true)

	// Deleting: 409 deleting while its hosting.delete runs.
	del := s.hostingAction(acc, hst, "ada", api.ActionHostingDelete)
	before = s.actionCount()
	check("deleting", s.call(key, "POST", path, ""), 409, fsm.CodeHostingDeleting, "being deleted")
	s.finish(del, true)
	check("deleted", s.call(key, "POST", path, ""), 409, fsm.CodeHostingNotActive, "deleted")

	// Provisioning, then failed: 409 not_active.
	now := time.Now()
	hst2 := ids.New("hst", now)
	create := store.Action{Action: api.Action{ID: ids.New("act", now), Command: api.ActionHostingCreate, ResourceID: hst2},
		NodeID: "hv-web", Target: "bob", Deadline: now.Add(time.Hour)}
	s.apply(fsm.CmdHostingCreate, fsm.HostingCreate{Hosting: store.HostingAccount{HostingAccount: api.HostingAccount{ID: hst2, Username: "bob",
		Domain: "bob.hosting.test", Plan: "hosting-starter", PHPVersion: "8.2"}, AccountID: acc, NodeID: "hv-web"}, Action: create})
	before = s.actionCount()
	path2 := "/v1/hosting/" + hst2 + "/password-reset"
	check("provisioning", s.call(key, "POST", path2, ""), 409, fsm.CodeHostingNotActive, "provisioned")
	s.finish(create.ID, false)
	check("failed", s.call(key, "POST", path2, ""), 409, fsm.CodeHostingNotActive, "failed to provision")
	if r := s.call(key, "GET", "/v1/hosting/"+hst2, ""); r.status != http.StatusOK || r.m["status"] != api.HostingError {
		t.Fatalf("failed account: %s", r.body)
	}
}
