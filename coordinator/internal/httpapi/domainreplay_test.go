package httpapi

import (
	"bytes"
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
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
// pending and after it has been applied.
func TestDomainReplayWhileTheFirstWaits(t *testing.T) {
	gate := &registryGate{}
	s, reg := domainAPIVia(t, func(m *registrar.Memory) registrar.Registrar { return gatedRegistrar{m, gate} })
	kicks := make(chan struct{}, 64)
	deps := *s.a.domainReg.Load()
	driverKick := deps.Kick
	deps.Kick = func() { kicks <- struct{}{}; driverKick() }
	s.a.SetDomainDeps(&deps)
	acc, key := s.account(api.ScopeDomainsRead, api.ScopeDomainsWrite, api.ScopeOrdersWrite)
	s.apply(fsm.CmdWalletCredit, fsm.WalletCredit{TxID: "wtx_dep", AccountID: acc, AmountUsdCents: 3000})
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
		for end := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			var d store.RegDomain
			_ = s.node.FSM.Read(func(r store.ReadTx) (err error) { d, err = r.RegDomainByID(domID); return })
			if d.Op == nil {
				break
			}
			if time.Now().After(end) {
				t.Fatalf("%s: the operation still open after the registry was opened: %+v", c.what, d.Op)
			}
		}
		after := s.call(key, c.method, c.path, c.body, "Idempotency-Key", c.idem)
		for _, r := range []reply{pending, after} {
			if r.status != http.StatusAccepted || r.m["id"] != domID || r.header.Get("Idempotent-Replayed") != "true" {
				t.Errorf("%s: a replay answered %d %s; want 202 as the first send (%s)", c.what, r.status, r.body, first.body)
			}
		}
	}
}
