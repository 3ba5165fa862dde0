package httpapi

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/raftnode"
	"github.com/hostplane/hostplane/coordinator/internal/registrar"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
)

// registryGate holds the registry's changes (a registration, a transfer, a
// name-server change) from the leader's driver while it is shut.
type registryGate struct {
	mu sync.Mutex
	ch chan struct{} // nil: open
}

func (g *registryGate) shut() { g.mu.Lock(); g.ch = make(chan struct{}); g.mu.Unlock() }

func (g *registryGate) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ch != nil {
		close(g.ch)
		g.ch = nil
	}
}

func (g *registryGate) pass(ctx context.Context) error {
	g.mu.Lock()
	ch := g.ch
	g.mu.Unlock()
	if ch == nil {
		return nil
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// gatedRegistrar is the in-memory registry behind a registryGate.
type gatedRegistrar struct {
	*registrar.Memory
	gate *registryGate
}

func (g gatedRegistrar) Register(ctx context.Context, req registrar.RegisterRequest) (registrar.Domain, error) {
	if err := g.gate.pass(ctx); err != nil {
		return registrar.Domain{}, err
	}
	return g.Memory.Register(ctx, req)
}

func (g gatedRegistrar) Transfer(ctx context.Context, req registrar.TransferRequest) (registrar.TransferResult, error) {
	if err := g.gate.pass(ctx); err != nil {
		return registrar.TransferResult{}, err
	}
	return g.Memory.Transfer(ctx, req)
}

func (g gatedRegistrar) SetNameservers(ctx context.Context, req registrar.NameserversRequest) (registrar.Tx, error) {
	if err := g.gate.pass(ctx); err != nil {
		return registrar.Tx{}, err
	}
	return g.Memory.SetNameservers(ctx, req)
}

// TestDomainReplayWhileTheFirstWaits: a second send of an Idempotency-Key
// that arrives while the first send still waits for the registry (a
// registration, a transfer, a name-server change: its command has stored
// the key's record already) answers what the first send answers, 201 (200)
// with the same body, not the command's stored 202 (200 with the change
// pending) while the first then answers 201 (200 applied). The order of
// events is held by the registry gate and the driver's kicks (each waiting
// send kicks it once), not by timing. Then a first send whose wait runs out
// answers 202, and its replays answer 202 too, while the change is still
// pending and after it has been applied. Below semantics level 14 the
// replays follow the first send's clocks (domainOpReplay); from it they
// answer the record the log decided (fsm.LevelDomainAnswer): both hold.
func TestDomainReplayWhileTheFirstWaits(t *testing.T) {
	for _, level := range []uint16{fsm.LevelDomainAnswer - 1, fsm.LevelDomainAnswer, fsm.LevelDomainAnswerDecided} {
		t.Run(fmt.Sprintf("level%d", level), func(t *testing.T) { domainReplayWhileTheFirstWaits(t, level) })
	}
}

func domainReplayWhileTheFirstWaits(t *testing.T, level uint16) {
	s, reg, gate, kicks, deps, key := gatedDomainRegistry(t, level)
	if _, err := reg.Register(context.Background(), registrar.RegisterRequest{ClTRID: "other-1", Name: "moved.test", Years: 1, AuthCode: "s3cret-Code-42"}); err != nil {
		t.Fatal(err)
	}

	send := func(method, path, body, idem string) <-chan reply {
		ch := make(chan reply, 1)
		go func() { ch <- s.call(key, method, path, body, "Idempotency-Key", idem) }()
		return ch
	}
	// twice sends method path body with the key idem, the second send once
	// the first waits for the registry (it has kicked the driver), and
	// opens the registry once the second waits too.
	twice := func(what, method, path, body, idem string) (first, second reply) {
		t.Helper()
		gate.shut()
		defer gate.open()
		a := send(method, path, body, idem)
		select {
		case r := <-a:
			t.Fatalf("%s: the first send answered %d %s before waiting for the registry", what, r.status, r.body)
		case <-kicks:
		}
		b := send(method, path, body, idem)
		select {
		case r := <-b:
			gate.open()
			f := <-a
			t.Fatalf("%s: the second send answered %d %s while the first still waited for the registry (the first then answered %d %s)", what, r.status, r.body, f.status, f.body)
		case <-kicks:
		}
		gate.open()
		return <-a, <-b
	}
	same := func(what string, want int, first, second reply) {
		t.Helper()
		// An error's body names its own request; its code and message are the answer.
		sameBody := bytes.Equal(first.body, second.body) || want >= 400 && first.code() == second.code() && first.msg() == second.msg()
		if first.status != want || second.status != want || !sameBody || second.header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("%s: the first send answered %d %s, its replay %d %s; want both %d, the same body, the replay marked", what, first.status, first.body, second.status, second.body, want)
		}
	}

	first, second := twice("registration", "POST", "/v1/domains", `{"name":"wait.test",`+testContact+`}`, "reg-wait")
	same("registration", http.StatusCreated, first, second)
	id, _ := first.m["id"].(string)

	first, second = twice("transfer", "POST", "/v1/domains/transfer", `{"name":"moved.test","auth_code":"s3cret-Code-42",`+testContact+`}`, "xfer-wait")
	same("transfer", http.StatusCreated, first, second)

	first, second = twice("name-server change", "PATCH", "/v1/domains/"+id, `{"nameservers":["ns1.other.net","ns2.other.net"]}`, "ns-wait")
	same("name-server change", http.StatusOK, first, second)
	if ch, _ := first.m["change"].(map[string]any); ch["status"] != api.ChangeApplied {
		t.Fatalf("name-server change: %s; want the change applied", first.body)
	}

	// A change the registry cannot take (it is down): 409 change_failed at both.
	reg.SetDown(true)
	first, second = twice("refused change", "PATCH", "/v1/domains/"+id, `{"nameservers":["ns1.third.net","ns2.third.net"]}`, "ns-refused")
	reg.SetDown(false)
	same("refused change", http.StatusConflict, first, second)
	if first.code() != "change_failed" {
		t.Fatalf("refused change: %s; want change_failed", first.body)
	}

	// A first send whose wait runs out answers 202; so do its replays,
	// while the operation is pending and once it has ended.
	short := deps
	short.Wait = time.Second
	s.a.SetDomainDeps(&short)
	for _, c := range []struct{ what, method, path, body, idem string }{
		{"slow registration", "POST", "/v1/domains", `{"name":"slow.test",` + testContact + `}`, "reg-slow"},
		{"slow change", "PATCH", "/v1/domains/" + id, `{"nameservers":["ns1.fourth.net","ns2.fourth.net"]}`, "ns-slow"},
	} {
		gate.shut()
		first := s.call(key, c.method, c.path, c.body, "Idempotency-Key", c.idem)
		if first.status != http.StatusAccepted {
			gate.open()
			t.Fatalf("%s: %d %s; want 202 (the registry held)", c.what, first.status, first.body)
		}
		pending := s.call(key, c.method, c.path, c.body, "Idempotency-Key", c.idem)
		gate.open()
		domID, _ := first.m["id"].(string)
		opEnded(t, s, domID, c.what+": the operation")
		after := s.call(key, c.method, c.path, c.body, "Idempotency-Key", c.idem)
		for _, r := range []reply{pending, after} {
			if r.status != http.StatusAccepted || r.m["id"] != domID || r.header.Get("Idempotent-Replayed") != "true" {
				t.Errorf("%s: a replay answered %d %s; want 202 as the first send (%s)", c.what, r.status, r.body, first.body)
			}
		}
	}
}

// deposingRaft is a leader that loses its leadership for the proposals of
// the types in refuse while deposed is set (ErrNotLeader, nothing applied):
// a coordinator whose first send saw its domain operation end, then could
// not record its answer, or could not close its answer window.
type deposingRaft struct {
	raftnode.Cluster
	deposed atomic.Bool
	refuse  map[fsm.CommandType]bool
}

func (d *deposingRaft) Apply(ctx context.Context, env *fsm.Envelope) (*fsm.Result, error) {
	if d.deposed.Load() && d.refuse[env.Type] {
		return nil, fmt.Errorf("%w: this coordinator lost its leadership", raftnode.ErrNotLeader)
	}
	return d.Cluster.Apply(ctx, env)
}

// TestDomainReplayAfterTheFirstSendLostLeadership: from level 14 the answer
// of a keyed domain order is the log's, so a first send whose coordinator
// loses its leadership while it waits cannot leave its replays another
// answer. (1) The registry answers within the first send's wait, the send
// answers 201, and its coordinator then can no longer write (below level 14
// its recorded answer is lost and a replay after the first send's wait
// answered 202, stop 59's note): a replay answers 201 with the same domain.
// (2) The first send's wait runs out while its coordinator cannot write:
// it answers 503 no_leader (never a 202 the log may contradict); the client
// sends the key again and is answered what the log decides, the end when
// the registry answered first (201), the close when a replay waited its
// bound first (202, and 202 again once the domain is active).
// It runs at level 14 and at 15 (where the decided record is marked).
func TestDomainReplayAfterTheFirstSendLostLeadership(t *testing.T) {
	for _, level := range []uint16{fsm.LevelDomainAnswer, fsm.LevelDomainAnswerDecided} {
		t.Run(fmt.Sprintf("level%d", level), func(t *testing.T) { domainReplayAfterLostLeadership(t, level) })
	}
}

func domainReplayAfterLostLeadership(t *testing.T, level uint16) {
	gate := &registryGate{}
	s, _ := domainAPIVia(t, func(m *registrar.Memory) registrar.Registrar { return gatedRegistrar{m, gate} })
	s.apply(fsm.CmdClusterLevel, fsm.ClusterLevel{Level: level})
	dep := &deposingRaft{Cluster: s.a.raft, refuse: map[fsm.CommandType]bool{fsm.CmdIdemAnswer: true, fsm.CmdDomainAnswerClose: true}}
	s.a.raft = dep
	deps := *s.a.domainReg.Load()
	// The wait bounds the registry driver's round trip in (1) and in "the
	// end first" (the end applied before the key's replay proposes its
	// close): 8 s, not 2, so the package's -race run beside the suite's
	// other lanes (load 20+) does not turn either into a close (review60 R9).
	deps.Wait = 8 * time.Second
	s.a.SetDomainDeps(&deps)
	acc, key := s.account(api.ScopeDomainsRead, api.ScopeDomainsWrite, api.ScopeOrdersWrite)
	s.apply(fsm.CmdWalletCredit, fsm.WalletCredit{TxID: "wtx_dep", AccountID: acc, AmountUsdCents: 5000})
	order := func(name, idem string) reply {
		return s.call(key, "POST", "/v1/domains", `{"name":"`+name+`",`+testContact+`}`, "Idempotency-Key", idem)
	}
	domain := func(id string) store.RegDomain {
		var d store.RegDomain
		_ = s.node.FSM.Read(func(r store.ReadTx) (err error) { d, err = r.RegDomainByID(id); return })
		return d
	}

	// (1) The end within the wait; the coordinator deposed before the
	// first send could write anything more.
	dep.deposed.Store(true)
	first := order("lost.test", "reg-lost")
	id, _ := first.m["id"].(string)
	if first.status != http.StatusCreated || id == "" {
		t.Fatalf("the first send: %d %s; want 201 (the registry answered within its wait)", first.status, first.body)
	}
	// A replay once the first send's wait would have run out.
	time.Sleep(time.Until(domain(id).CreatedAt.Add(deps.Wait)))
	dep.deposed.Store(false)
	replay := order("lost.test", "reg-lost")
	if replay.status != first.status || replay.m["id"] != id || replay.m["status"] != api.DomainActive || replay.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("the first send answered %d %s; its replay after the first's coordinator lost its leadership %d %s; want the same 201", first.status, first.body, replay.status, replay.body)
	}

	// (2) The wait runs out while the coordinator cannot write.
	for _, c := range []struct {
		what, name string
		endFirst   bool
	}{{"the end first", "late.test", true}, {"the close first", "later.test", false}} {
		gate.shut()
		dep.deposed.Store(true)
		first := order(c.name, "reg-"+c.name)
		dep.deposed.Store(false)
		if first.status != http.StatusServiceUnavailable || first.code() != "no_leader" || first.header.Get("Retry-After") == "" {
			gate.open()
			t.Fatalf("%s: the first send whose wait ran out on a deposed coordinator: %d %s; want 503 no_leader with Retry-After", c.what, first.status, first.body)
		}
		if c.endFirst {
			gate.open()
		}
		again := order(c.name, "reg-"+c.name)
		gate.open()
		want := http.StatusAccepted
		if c.endFirst {
			want = http.StatusCreated
		}
		id, _ := again.m["id"].(string)
		if again.status != want || id == "" {
			t.Fatalf("%s: the key sent again: %d %s; want %d", c.what, again.status, again.body, want)
		}
		for end := time.Now().Add(30 * time.Second); domain(id).Op != nil; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(end) {
				t.Fatalf("%s: the registration still open: %+v", c.what, domain(id).Op)
			}
		}
		after := order(c.name, "reg-"+c.name)
		if after.status != again.status || !bytes.Equal(after.body, again.body) {
			t.Fatalf("%s: the key answered %d %s, then once the domain was %s %d %s; want the same", c.what, again.status, again.body, domain(id).Status, after.status, after.body)
		}
	}
}
