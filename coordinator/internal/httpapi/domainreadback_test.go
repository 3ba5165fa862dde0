package httpapi

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/raftnode"
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
	d := opEnded(t, s, id, "the "+kind)
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

// TestDomainReplayWhoseReadBackFails: while the first send of a keyed order
// (a change) waits for the registry, the key is sent again and that
// send's read-back of whether the log decides its answer (answerLogged)
// fails. It answers as the first send does, the same status and body (202
// with the order pending once the first send's wait ran out), not the
// record as stored (the change's command's "200 pending"); and once the
// registry has answered, the key still answers that, read back or not.
func TestDomainReplayWhoseReadBackFails(t *testing.T) {
	for _, level := range []uint16{fsm.LevelDomainAnswer, fsm.LevelDomainAnswerDecided} {
		for _, kind := range []string{"registration", "name-server change"} {
			t.Run(fmt.Sprintf("level%d/%s", level, kind), func(t *testing.T) { domainReplayReadBackFails(t, level, kind) })
		}
	}
}

// readBackDomainAPI is gatedDomainAPI at level with a 2 s wait and, for a
// change, a registered domain to change: the key's request (method, path,
// body).
func readBackDomainAPI(t *testing.T, level uint16, kind string) (s *srvAPI, gate *registryGate, kicks chan struct{}, key, method, path, body string) {
	t.Helper()
	s, gate, kicks, deps, key := gatedDomainAPI(t, level)
	deps.Wait = 2 * time.Second
	s.a.SetDomainDeps(&deps)
	method, path, body = "POST", "/v1/domains", `{"name":"readback.test",`+testContact+`}`
	if kind != "registration" {
		method, path, body = domainToChange(t, s, kicks, key)
	}
	return s, gate, kicks, key, method, path, body
}

// domainToChange registers base.test for key (the driver's kicks it made
// drained) and returns the change the key's request makes to it: a PATCH
// of its name servers.
func domainToChange(t *testing.T, s *srvAPI, kicks chan struct{}, key string) (method, path, body string) {
	t.Helper()
	r := s.call(key, "POST", "/v1/domains", `{"name":"base.test",`+testContact+`}`)
	id, _ := r.m["id"].(string)
	if r.status != http.StatusCreated || id == "" {
		t.Fatalf("the domain to change: %d %s", r.status, r.body)
	}
	for len(kicks) > 0 {
		<-kicks
	}
	return "PATCH", "/v1/domains/" + id, `{"nameservers":["ns1.other.net","ns2.other.net"]}`
}

func domainReplayReadBackFails(t *testing.T, level uint16, kind string) {
	s, gate, kicks, key, method, path, body := readBackDomainAPI(t, level, kind)
	// Every second read-back fails: the first send's succeeds, the
	// replay's fails, and so on.
	var reads atomic.Int32
	s.a.readBack = func(fn func(store.ReadTx) error) error {
		if reads.Add(1)%2 == 0 {
			return fmt.Errorf("%w: the read-back failed (injected)", store.ErrNotFound)
		}
		return s.a.state.Read(fn)
	}
	send := keyedSend(s, key, "k-replay-readback", method, path, body)
	gate.shut()
	defer gate.open()
	a := send()
	firstSendWaits(t, a, kicks)
	replay := <-send()
	first := <-a
	if n := reads.Load(); n != 2 {
		t.Fatalf("%d read-backs; want 2 (the first send's, then the replay's, injected to fail)", n)
	}
	wantState := api.DomainRegistering
	if kind != "registration" {
		wantState = api.ChangePending
	}
	if first.status != http.StatusAccepted || domainAnswerState(first.m, kind) != wantState {
		t.Fatalf("level %d, the first send with the registry held: %d %s; want 202 with %s %q", level, first.status, first.body, kind, wantState)
	}
	if replay.status != first.status || !bytes.Equal(replay.body, first.body) || replay.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("level %d: the first send answered %d %s; the key sent again meanwhile, its read-back failing, %d %s; want the same",
			level, first.status, first.body, replay.status, replay.body)
	}
	gate.open()
	id, _ := first.m["id"].(string)
	opEnded(t, s, id, "the "+kind)
	// Once the registry has answered: read back (3), then not (4).
	for i := 0; i < 2; i++ {
		if again := <-send(); again.status != first.status || !bytes.Equal(again.body, first.body) {
			t.Fatalf("level %d, the key sent again once the %s ended (read-back %d): %d %s; want %d %s",
				level, kind, reads.Load(), again.status, again.body, first.status, first.body)
		}
	}
}

// closeFirstRaft runs before, once, ahead of the first close of an answer
// window proposed through it (another send's close and the registry's end
// applied between a send's wait and its own close).
type closeFirstRaft struct {
	raftnode.Cluster
	before func()
	done   atomic.Bool
}

func (c *closeFirstRaft) Apply(ctx context.Context, env *fsm.Envelope) (*fsm.Result, error) {
	if env.Type == fsm.CmdDomainAnswerClose && !c.done.Swap(true) {
		c.before()
	}
	return c.Cluster.Apply(ctx, env)
}

// TestDomainReadBackFailsAndAnotherSendClosesFirst: the first send of a
// keyed order (a change), its read-back after the apply failing, waits with
// the registry held; just before its close of the key's answer window is
// proposed, another send's close is applied (the key's record: 202), then
// the registry's end. The first send answers what the key's record holds,
// 202 with the order pending, as every later send of the key does; not the
// end its own close's apply saw (201, 200 applied: the record says 202).
func TestDomainReadBackFailsAndAnotherSendClosesFirst(t *testing.T) {
	for _, level := range []uint16{fsm.LevelDomainAnswer, fsm.LevelDomainAnswerDecided} {
		for _, kind := range []string{"registration", "name-server change"} {
			t.Run(fmt.Sprintf("level%d/%s", level, kind), func(t *testing.T) { domainAnotherSendClosesFirst(t, level, kind) })
		}
	}
}

func domainAnotherSendClosesFirst(t *testing.T, level uint16, kind string) {
	s, gate, _, key, method, path, body := readBackDomainAPI(t, level, kind)
	inner := s.a.raft
	var id, opID, scope string
	var hookErr error
	s.a.raft = &closeFirstRaft{Cluster: inner, before: func() {
		var d store.RegDomain
		if hookErr = s.node.FSM.Read(func(r store.ReadTx) (err error) {
			id = r.RegDomainNameTaken("readback.test")
			if kind != "registration" {
				id = r.RegDomainNameTaken("base.test")
			}
			d, err = r.RegDomainByID(id)
			return
		}); hookErr != nil {
			return
		}
		if d.Op == nil || d.Op.Answer == nil {
			hookErr = fmt.Errorf("the answer window is not open before the first send's close: %+v", d.Op)
			return
		}
		opID, scope = d.Op.ID, d.Op.Answer.Scope
		env, err := fsm.NewEnvelope(fsm.CmdDomainAnswerClose, time.Now(), fsm.DomainAnswerClose{DomainID: id, OpID: opID})
		if err == nil {
			_, err = inner.Apply(context.Background(), env)
		}
		if hookErr = err; err != nil {
			return
		}
		gate.open()
		for end := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			_ = s.node.FSM.Read(func(r store.ReadTx) (err error) { d, err = r.RegDomainByID(id); return })
			if d.Op == nil {
				return
			}
			if time.Now().After(end) {
				hookErr = fmt.Errorf("the %s still open after the registry was opened: %+v", kind, d.Op)
				return
			}
		}
	}}
	gate.shut()
	defer gate.open()
	s.a.readBack = func(func(store.ReadTx) error) error {
		return fmt.Errorf("%w: the read-back failed (injected)", store.ErrNotFound)
	}
	first := s.call(key, method, path, body, "Idempotency-Key", "k-closed-first")
	s.a.readBack = nil
	if hookErr != nil || opID == "" {
		t.Fatalf("another send's close and the end before the first send's close: %v (operation %q)", hookErr, opID)
	}
	var rec store.IdemRecord
	_ = s.node.FSM.Read(func(r store.ReadTx) (err error) {
		rec, err = r.Idempotency(scope)
		return
	})
	if rec.Status != http.StatusAccepted {
		t.Fatalf("the key's record after another send's close, then the end: %d %s; want 202 (the close decided it)", rec.Status, rec.Body)
	}
	if first.status != rec.Status || !bytes.Equal(bytes.TrimSpace(first.body), bytes.TrimSpace(rec.Body)) {
		t.Fatalf("level %d: the first send, another send's close and the %s's end applied before its own close, answered %d %s; the key's record holds %d %s; want the same",
			level, kind, first.status, first.body, rec.Status, rec.Body)
	}
	replay := s.call(key, method, path, body, "Idempotency-Key", "k-closed-first")
	if replay.status != first.status || !bytes.Equal(replay.body, first.body) {
		t.Fatalf("level %d: the first send answered %d %s; the key sent again %d %s; want the same", level, first.status, first.body, replay.status, replay.body)
	}
}

// TestDomainReadBackFailsWakesOnTheEnd: the first send of a keyed order (a
// change) whose read-back after the apply fails waits for the registry as
// a send whose read-back worked does: it answers as soon as the registry's
// end is applied (201, 200 applied), not once its whole wait (20 s here)
// has run out; and, from level 15, a send whose client went away closes
// the key's answer window at once (202 for the key), not after its wait.
func TestDomainReadBackFailsWakesOnTheEnd(t *testing.T) {
	for _, kind := range []string{"registration", "name-server change"} {
		t.Run(kind+"/end", func(t *testing.T) { domainReadBackWakes(t, kind, false) })
		t.Run(kind+"/client-gone", func(t *testing.T) { domainReadBackWakes(t, kind, true) })
	}
}

func domainReadBackWakes(t *testing.T, kind string, gone bool) {
	const wait = 20 * time.Second
	s, gate, kicks, key, method, path, body := readBackDomainAPI(t, fsm.LevelDomainAnswerDecided, kind)
	deps := *s.a.domainReg.Load()
	deps.Wait = wait
	s.a.SetDomainDeps(&deps)
	s.a.readBack = func(func(store.ReadTx) error) error {
		return fmt.Errorf("%w: the read-back failed (injected)", store.ErrNotFound)
	}
	gate.shut()
	defer gate.open()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, s.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", "k-wakes")
	start := time.Now()
	type answer struct {
		status int
		body   []byte
		err    error
	}
	ch := make(chan answer, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			ch <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		ch <- answer{resp.StatusCode, b, err}
	}()
	// The first send's kick comes once its command has applied and its
	// read-back failed (unreadAnswer).
	select {
	case a := <-ch:
		t.Fatalf("the first send answered %d %s (%v) before waiting for the registry", a.status, a.body, a.err)
	case <-kicks:
	}
	var id string
	_ = s.node.FSM.Read(func(r store.ReadTx) error {
		if id = r.RegDomainNameTaken("readback.test"); kind != "registration" {
			id = r.RegDomainNameTaken("base.test")
		}
		return nil
	})
	if gone {
		cancel()
		<-ch
		var d store.RegDomain
		for ; ; time.Sleep(10 * time.Millisecond) {
			_ = s.node.FSM.Read(func(r store.ReadTx) (err error) { d, err = r.RegDomainByID(id); return })
			if d.Op == nil || d.Op.Answer == nil {
				break
			}
			if time.Since(start) > wait/2 {
				t.Fatalf("the answer window still open %v after a send whose client went away (its wait %v)", time.Since(start), wait)
			}
		}
		if d.Op == nil {
			t.Fatalf("the %s ended with the registry shut: %+v", kind, d)
		}
		gate.open()
		replay := s.call(key, method, path, body, "Idempotency-Key", "k-wakes")
		if replay.status != http.StatusAccepted || replay.m["id"] != id {
			t.Fatalf("the key sent again after the send whose client went away closed its window: %d %s; want 202", replay.status, replay.body)
		}
		return
	}
	gate.open()
	a := <-ch
	want := http.StatusCreated
	if kind != "registration" {
		want = http.StatusOK
	}
	if a.err != nil || a.status != want {
		t.Fatalf("the first send, the registry answering: %d %s (%v); want %d", a.status, a.body, a.err, want)
	}
	if took := time.Since(start); took > wait/2 {
		t.Fatalf("the first send answered %v after it began, the registry answering at once; want it woken by the end, not after its wait (%v)", took, wait)
	}
}
