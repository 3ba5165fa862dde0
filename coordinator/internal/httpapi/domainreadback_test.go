package httpapi

import (
	"bytes"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
)

// TestDomainReadBackFailsAfterTheApply: the first send of a keyed order (a
// change) whose command applied, and whose read-back of the key's answer
// (answerLogged) then fails, does not answer that read's error (a 404 for
// an order that went through). From level 14, the registry held, it
// answers 202 with the domain pending once its wait has run out, and the
// log agrees: once the registry has answered, the key answers the same 202
// (at level 14 too, where the window's close must not come before the
// first send's wait could have run out). Below 14 the read cannot decide
// anything (no window was opened) and the clocks answer, 201 (200 applied).
// The order is charged once and ends as the registry decides.
func TestDomainReadBackFailsAfterTheApply(t *testing.T) {
	for _, level := range []uint16{fsm.LevelDomainAnswer - 1, fsm.LevelDomainAnswer, fsm.LevelDomainAnswerDecided} {
		for _, kind := range []string{"registration", "name-server change"} {
			t.Run(fmt.Sprintf("level%d/%s", level, kind), func(t *testing.T) { domainReadBackFails(t, level, kind, false) })
		}
	}
	// From 14, with the registry answering within the first send's wait,
	// the end decides the key's answer: 201 (200 applied) at both sends
	// (review62 R2: nothing covered that branch).
	for _, level := range []uint16{fsm.LevelDomainAnswer, fsm.LevelDomainAnswerDecided} {
		for _, kind := range []string{"registration", "name-server change"} {
			t.Run(fmt.Sprintf("level%d/%s/registry-first", level, kind), func(t *testing.T) { domainReadBackFails(t, level, kind, true) })
		}
	}
}

func domainReadBackFails(t *testing.T, level uint16, kind string, registryFirst bool) {
	s, gate, _, deps, key := gatedDomainAPI(t, level)
	deps.Wait = 2 * time.Second
	s.a.SetDomainDeps(&deps)
	method, path, body := "POST", "/v1/domains", `{"name":"readback.test",`+testContact+`}`
	if kind != "registration" {
		r := s.call(key, "POST", "/v1/domains", `{"name":"base.test",`+testContact+`}`)
		id, _ := r.m["id"].(string)
		if r.status != http.StatusCreated || id == "" {
			t.Fatalf("the domain to change: %d %s", r.status, r.body)
		}
		method, path, body = "PATCH", "/v1/domains/"+id, `{"nameservers":["ns1.other.net","ns2.other.net"]}`
	}
	send := func() reply { return s.call(key, method, path, body, "Idempotency-Key", "k-readback") }

	// Below 14 (or registryFirst) the registry answers within the first
	// send's wait; from 14 it is held otherwise, so the first send's 202 is
	// its answer, not the end's.
	want, wantState := http.StatusAccepted, api.DomainRegistering
	if kind != "registration" {
		wantState = api.ChangePending
	}
	if level < fsm.LevelDomainAnswer || registryFirst {
		want, wantState = http.StatusCreated, api.DomainActive
		if kind != "registration" {
			want, wantState = http.StatusOK, api.ChangeApplied
		}
	} else {
		gate.shut()
	}
	s.a.readBack = func(func(store.ReadTx) error) error {
		return fmt.Errorf("%w: the read-back failed (injected)", store.ErrNotFound)
	}
	first := send()
	s.a.readBack = nil
	gate.open()
	id, _ := first.m["id"].(string)
	if first.status != want || id == "" || domainAnswerState(first.m, kind) != wantState {
		t.Fatalf("level %d, the first send whose read-back after the apply failed: %d %s; want %d with %s %q (the %s went through)",
			level, first.status, first.body, want, kind, wantState, kind)
	}
	var d store.RegDomain
	for end := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		_ = s.node.FSM.Read(func(r store.ReadTx) (err error) { d, err = r.RegDomainByID(id); return })
		if d.Op == nil {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("the %s still open after the registry was opened: %+v", kind, d.Op)
		}
	}
	if d.Status != api.DomainActive ||
		kind != "registration" && (d.Change == nil || d.Change.Status != api.ChangeApplied) {
		t.Fatalf("the %s ended with the domain %s, change %+v; want it active, the change applied", kind, d.Status, d.Change)
	}
	// 30 USD credited, one registration of 10 USD charged (base.test's
	// for the change, which charges nothing).
	if b := s.balance(d.AccountID); b != 2000 {
		t.Fatalf("the wallet holds %d cents after the %s; want 2000 (one registration charged)", b, kind)
	}
	replay := send()
	if replay.status != first.status || !bytes.Equal(replay.body, first.body) || replay.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("level %d: the first send answered %d %s; the key sent again once the %s ended %d %s; want the same", level, first.status, first.body, kind, replay.status, replay.body)
	}
}
