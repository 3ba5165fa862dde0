package httpapi

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/raftnode"
	"github.com/hostplane/hostplane/coordinator/internal/registrar"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
)

// TestDomainReplayOfAnOperationOpenedAtLevel13 (review60 R6): an order or
// a change opened while the cluster ran level 13 has no answer window; its
// first send waits for the registry by the clocks and records its answer
// itself. When the level rises to 14 (or 15) while that send waits, a send
// of the key answers what the first send answers, 201 (200) with the same
// body, not the command's stored 202 (200 pending) at once because no window
// is open. The order of events is held by the registry gate and the
// driver's kicks, as in TestDomainReplayWhileTheFirstWaits.
func TestDomainReplayOfAnOperationOpenedAtLevel13(t *testing.T) {
	for _, level := range []uint16{fsm.LevelDomainAnswer, fsm.LevelDomainAnswerDecided} {
		for _, kind := range []string{"registration", "name-server change"} {
			t.Run(fmt.Sprintf("level%d/%s", level, kind), func(t *testing.T) { domainReplayOpenedAtLevel13(t, level, kind) })
		}
	}
}

func domainReplayOpenedAtLevel13(t *testing.T, level uint16, kind string) {
	s, gate, kicks, _, key := gatedDomainAPI(t, fsm.LevelDomainAnswer-1)

	method, path, body, want := "POST", "/v1/domains", `{"name":"wait.test",`+testContact+`}`, http.StatusCreated
	if kind != "registration" {
		method, path, body = domainToChange(t, s, kicks, key)
		want = http.StatusOK
	}
	send := keyedSend(s, key, "k13", method, path, body)
	gate.shut()
	defer gate.open()
	a := send()
	firstSendWaits(t, a, kicks)
	s.apply(fsm.CmdClusterLevel, fsm.ClusterLevel{Level: level})
	b := send()
	var second reply
	select {
	case second = <-b:
	case <-kicks:
	}
	gate.open()
	first := <-a
	if second.status == 0 {
		second = <-b
	}
	if first.status != want || second.status != want || !bytes.Equal(first.body, second.body) || second.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("opened at level 13, the key sent again at level %d: the first send answered %d %s, the second %d %s; want both %d, the same body", level, first.status, first.body, second.status, second.body, want)
	}
	// The same body is the registry's end, not the command's pending
	// record (a 200 with the change pending would pass the check above):
	// the domain active, the change applied.
	if got := domainAnswerState(first.m, kind); got != wantState(kind) {
		t.Fatalf("opened at level 13, the key sent again at level %d: both sends answered %s %q; want %q (the registry's end): %s", level, kind, got, wantState(kind), first.body)
	}
	// And once both have answered, the key still answers the same.
	if third := <-send(); third.status != want || !bytes.Equal(third.body, first.body) {
		t.Fatalf("the key sent a third time: %d %s; want %d %s", third.status, third.body, want, first.body)
	}
}

// gatedDomainAPI is a domain API at level whose registry answers when gate
// opens, whose registry driver's kicks are sent on kicks, with an 8 s wait
// for the first send, and an account of key holding 30 USD.
func gatedDomainAPI(t *testing.T, level uint16) (*srvAPI, *registryGate, chan struct{}, DomainDeps, string) {
	t.Helper()
	s, _, gate, kicks, deps, key := gatedDomainRegistry(t, level)
	deps.Wait = 8 * time.Second
	s.a.SetDomainDeps(&deps)
	return s, gate, kicks, deps, key
}

// gatedDomainRegistry is gatedDomainAPI with the registry's memory and
// the first send's wait left as DomainDeps' default.
func gatedDomainRegistry(t *testing.T, level uint16) (*srvAPI, *registrar.Memory, *registryGate, chan struct{}, DomainDeps, string) {
	t.Helper()
	gate := &registryGate{}
	s, reg := domainAPIVia(t, func(m *registrar.Memory) registrar.Registrar { return gatedRegistrar{m, gate} })
	s.apply(fsm.CmdClusterLevel, fsm.ClusterLevel{Level: level})
	kicks := make(chan struct{}, 64)
	deps := *s.a.domainReg.Load()
	driverKick := deps.Kick
	deps.Kick = func() { kicks <- struct{}{}; driverKick() }
	s.a.SetDomainDeps(&deps)
	acc, key := s.account(api.ScopeDomainsRead, api.ScopeDomainsWrite, api.ScopeOrdersWrite)
	s.apply(fsm.CmdWalletCredit, fsm.WalletCredit{TxID: "wtx_dep", AccountID: acc, AmountUsdCents: 3000})
	return s, reg, gate, kicks, deps, key
}

// keyedSend is a send of method path body with key and Idempotency-Key
// idem in the background, its answer on the channel it returns.
func keyedSend(s *srvAPI, key, idem, method, path, body string) func() <-chan reply {
	return func() <-chan reply {
		ch := make(chan reply, 1)
		go func() { ch <- s.call(key, method, path, body, "Idempotency-Key", idem) }()
		return ch
	}
}

// firstSendWaits fails t unless the send answering on a waits for the
// registry: the driver's kick (on kicks) comes before its answer.
func firstSendWaits(t *testing.T, a <-chan reply, kicks <-chan struct{}) {
	t.Helper()
	select {
	case r := <-a:
		t.Fatalf("the first send answered %d %s before waiting for the registry", r.status, r.body)
	case <-kicks:
	}
}

// opEnded waits (30 s at most) until domain id's operation has ended and
// returns the domain; what names the operation in the failure.
func opEnded(t *testing.T, s *srvAPI, id, what string) store.RegDomain {
	t.Helper()
	for end := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var d store.RegDomain
		_ = s.node.FSM.Read(func(r store.ReadTx) (err error) { d, err = r.RegDomainByID(id); return })
		if d.Op == nil {
			return d
		}
		if time.Now().After(end) {
			t.Fatalf("%s still open after the registry was opened: %+v", what, d.Op)
		}
	}
}

// registered waits (30 s at most) until domain id's registration has
// ended with the domain active; with early, it fails t when that end came
// later than half of wait after the order (the test needs an end well
// within the first send's wait).
func registered(t *testing.T, s *srvAPI, id string, early bool, wait time.Duration) {
	t.Helper()
	for end := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var d store.RegDomain
		_ = s.node.FSM.Read(func(r store.ReadTx) (err error) { d, err = r.RegDomainByID(id); return })
		if d.Op == nil && d.Status == api.DomainActive {
			if early && d.CreatedAt.Add(wait/2).Before(time.Now()) {
				t.Fatalf("the registration ended %v after its order: the test needs an end well within the first send's wait", time.Since(d.CreatedAt))
			}
			return
		}
		if time.Now().After(end) {
			t.Fatalf("the registration still open after the registry was opened: %s %+v", d.Status, d.Op)
		}
	}
}

// domainAnswerState is what a domain answer says of kind: the
// registration's status, or the change's.
func domainAnswerState(m map[string]any, kind string) string {
	if kind == "registration" {
		st, _ := m["status"].(string)
		return st
	}
	ch, _ := m["change"].(map[string]any)
	st, _ := ch["status"].(string)
	return st
}

// wantState is the state of kind once the registry has answered yes.
func wantState(kind string) string {
	if kind == "registration" {
		return api.DomainActive
	}
	return api.ChangeApplied
}

// levelRaisingRaft raises the cluster's semantics level to level just
// before the first proposal of type at (an entry committed between the
// handler's start and its command): the level rises inside one request.
type levelRaisingRaft struct {
	raftnode.Cluster
	at    fsm.CommandType
	level uint16
	done  atomic.Bool
}

func (l *levelRaisingRaft) Apply(ctx context.Context, env *fsm.Envelope) (*fsm.Result, error) {
	if env.Type == l.at && !l.done.Swap(true) {
		raise, err := fsm.NewEnvelope(fsm.CmdClusterLevel, time.Now(), fsm.ClusterLevel{Level: l.level})
		if err != nil {
			return nil, err
		}
		if _, err := l.Cluster.Apply(ctx, raise); err != nil {
			return nil, err
		}
	}
	return l.Cluster.Apply(ctx, env)
}

// TestDomainAnswerLevelRaisedInsideTheFirstSend (review60 R7): the level
// rises from 13 to 14 (or 15) after the first send of a keyed order began
// and before its command applied, so the command opens an answer window.
// The first send, whose wait runs out with the registry held, answers 202;
// once the registry has registered the domain, the key still answers that
// 202 (the first send closed the window), not the end's 201.
func TestDomainAnswerLevelRaisedInsideTheFirstSend(t *testing.T) {
	for _, level := range []uint16{fsm.LevelDomainAnswer, fsm.LevelDomainAnswerDecided} {
		t.Run(fmt.Sprintf("level%d", level), func(t *testing.T) {
			gate := &registryGate{}
			s, _ := domainAPIVia(t, func(m *registrar.Memory) registrar.Registrar { return gatedRegistrar{m, gate} })
			s.apply(fsm.CmdClusterLevel, fsm.ClusterLevel{Level: fsm.LevelDomainAnswer - 1})
			s.a.raft = &levelRaisingRaft{Cluster: s.a.raft, at: fsm.CmdDomainOrder, level: level}
			deps := *s.a.domainReg.Load()
			deps.Wait = time.Second
			s.a.SetDomainDeps(&deps)
			acc, key := s.account(api.ScopeDomainsRead, api.ScopeDomainsWrite, api.ScopeOrdersWrite)
			s.apply(fsm.CmdWalletCredit, fsm.WalletCredit{TxID: "wtx_dep", AccountID: acc, AmountUsdCents: 3000})
			order := func() reply {
				return s.call(key, "POST", "/v1/domains", `{"name":"raised.test",`+testContact+`}`, "Idempotency-Key", "k-raised")
			}
			gate.shut()
			first := order()
			gate.open()
			id, _ := first.m["id"].(string)
			if first.status != http.StatusAccepted || id == "" {
				t.Fatalf("the first send with the registry held: %d %s; want 202", first.status, first.body)
			}
			if got := s.a.state.ClusterLevel(); got != level {
				t.Fatalf("the cluster's level after the first send: %d; want %d (raised inside it)", got, level)
			}
			registered(t, s, id, false, 0)
			replay := order()
			if replay.status != first.status || replay.m["id"] != id || replay.header.Get("Idempotent-Replayed") != "true" {
				t.Fatalf("the first send answered %d %s; the key sent again once the domain was active %d %s; want the same 202", first.status, first.body, replay.status, replay.body)
			}
		})
	}
}

// TestDomainReplayOfAWindowClosedEarly: from level 15 a send of a key
// whose answer window was closed (202) answers that 202 however the
// operation ended: here the window is closed at once (as a send of the key
// whose client went away closes it) and the registry registers the domain
// well before the first send's wait would have run out. The first send,
// and the key sent again once the domain is active, answer the close's 202
// (the record marked decided); the clocks would have said 201 for an end
// that early (level 14's limit, domainOpReplay).
func TestDomainReplayOfAWindowClosedEarly(t *testing.T) {
	s, gate, kicks, deps, key := gatedDomainAPI(t, fsm.LevelDomainAnswerDecided)
	order := func() reply {
		return s.call(key, "POST", "/v1/domains", `{"name":"early.test",`+testContact+`}`, "Idempotency-Key", "k-early")
	}
	gate.shut()
	defer gate.open()
	ch := make(chan reply, 1)
	go func() { ch <- order() }()
	firstSendWaits(t, ch, kicks)
	var id string
	_ = s.node.FSM.Read(func(r store.ReadTx) error { id = r.RegDomainNameTaken("early.test"); return nil })
	s.apply(fsm.CmdDomainAnswerClose, fsm.DomainAnswerClose{DomainID: id, OpID: id})
	gate.open()
	first := <-ch
	if first.status != http.StatusAccepted || first.m["id"] != id {
		t.Fatalf("the first send whose window was closed: %d %s; want 202", first.status, first.body)
	}
	registered(t, s, id, true, deps.Wait)
	replay := order()
	if replay.status != first.status || !bytes.Equal(replay.body, first.body) || replay.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("the first send answered %d %s; the key sent again once the domain was active %d %s; want the same 202", first.status, first.body, replay.status, replay.body)
	}
}
