package session_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/session"
	pb "github.com/hostplane/hostplane/proto"
	"github.com/hostplane/hostplane/tests/framework"
)

// callsBackend is a coordinator without Raft: one CA, every node accepted.
type callsBackend struct {
	ca   *session.CA
	cert *tls.Certificate
	tok  pb.JoinToken
}

func (b *callsBackend) Certificate() (*tls.Certificate, error)                 { return b.cert, nil }
func (b *callsBackend) ClientCAs() (*x509.CertPool, error)                     { return b.ca.Pool(), nil }
func (b *callsBackend) Leader() (bool, string, string)                         { return true, "", "" }
func (b *callsBackend) AuthorizeNode(string, string) error                     { return nil }
func (b *callsBackend) Hello(context.Context, string, string, *pb.Hello) error { return nil }
func (b *callsBackend) Enrol(_ context.Context, in session.EnrolInput) *pb.EnrolResponse {
	if in.Token.Secret != b.tok.Secret {
		return &pb.EnrolResponse{Error: &pb.Error{Code: "refused", Message: "bad token"}}
	}
	c, err := b.ca.SignNode(in.CSR, in.NodeID, time.Now(), time.Hour)
	if err != nil {
		return &pb.EnrolResponse{Error: &pb.Error{Code: "internal", Message: err.Error()}}
	}
	return &pb.EnrolResponse{NodeId: in.NodeID, CertDer: c.DER, CaDer: b.ca.DER}
}
func (b *callsBackend) Renew(_ context.Context, nodeID, _ string, csrDER []byte) ([]byte, string, error) {
	csr, _, err := session.ParseNodeCSR(csrDER)
	if err != nil {
		return nil, "", err
	}
	c, err := b.ca.SignNode(csr, nodeID, time.Now(), time.Hour)
	return c.DER, c.Serial, err
}

// buildTestAgent builds agent/internal/session/testdata/testagent: the real
// agent session with scripted hooks (coordinator tests cannot import it).
func buildTestAgent(t testing.TB) string {
	return framework.Binary(t, framework.PkgTestAgent, framework.BuildOptions{Race: true})
}

type callsFixture struct {
	srv        *session.Server
	tok        pb.JoinToken
	connected  chan string
	disconnect chan string
	inv        chan *pb.Inventory
	invCount   atomic.Int32
}

// newCallsFixture starts a session listener (opts may change its config).
func newCallsFixture(t testing.TB, opts ...func(*session.Config)) *callsFixture {
	t.Helper()
	ca, _, err := session.NewCA(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.ServerCert(time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	f := &callsFixture{
		tok:       pb.JoinToken{ID: "jt_0123456789", Secret: "abcdefghijklmnopqrstuvwxyz", CAFingerprint: ca.Fingerprint},
		connected: make(chan string, 16), disconnect: make(chan string, 16), inv: make(chan *pb.Inventory, 64),
	}
	cfg := session.Config{
		// The agent gives up a session whose pong is 3 pings late ("session
		// with ...: read envelope header: deadline exceeded" in its log): with
		// -race on 2 cores the pong queued behind the 200 concurrent calls
		// missed 600 ms (200 ms pings) in a CI run at load ~40, and 3 s (1 s
		// pings) in 1 of 5 runs at load ~20 (stress) and 1 of 3 at load ~15.
		ID: "c1", ListenAddr: "127.0.0.1:0", PingInterval: 2 * time.Second,
		Backend:      &callsBackend{ca: ca, cert: cert, tok: f.tok},
		OnConnect:    func(id string) { f.connected <- id },
		OnDisconnect: func(id string) { f.disconnect <- id },
		OnInventory: func(id string, inv *pb.Inventory) {
			f.invCount.Add(1)
			f.inv <- inv
		},
	}
	for _, o := range opts {
		o(&cfg)
	}
	srv, err := session.Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan struct{})
	go func() { defer close(served); srv.Serve(ctx) }()
	t.Cleanup(func() { cancel(); srv.Close(); <-served })
	f.srv = srv
	return f
}

func (f *callsFixture) agent(t testing.TB, node string, extra ...string) *framework.Sim {
	return f.agentFrom(t, buildTestAgent(t), node, extra...)
}

// agentFrom is agent with the testagent binary bin.
func (f *callsFixture) agentFrom(t testing.TB, bin, node string, extra ...string) *framework.Sim {
	args := append([]string{"-coordinator", f.srv.Addr(), "-token", f.tok.String(), "-node", node, "-dir", t.TempDir()}, extra...)
	a := framework.StartSim(t, bin, args...)
	select {
	case id := <-f.connected:
		if id != node {
			t.Fatalf("connected %q, want %q", id, node)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("agent %s did not connect; stderr:\n%s", node, a.Stderr.String())
	}
	return a
}

func echo(id, params string) *pb.Envelope {
	return &pb.Envelope{Seq: 1, Body: &pb.Envelope_ActionAssign{ActionAssign: &pb.ActionAssign{ActionId: id, Command: "echo", Target: "vm1", Params: []byte(params)}}}
}

// callEcho runs one echo action and checks its frames.
func callEcho(ctx context.Context, srv *session.Server, node, id string) error {
	params := fmt.Sprintf(`{"n":%q}`, id)
	var frames []*pb.Envelope
	err := srv.Call(ctx, node, echo(id, params), func(env *pb.Envelope) (bool, error) {
		frames = append(frames, env)
		return env.GetActionResult() != nil, nil
	})
	if err != nil {
		return err
	}
	if len(frames) != 2 || frames[0].GetActionProgress().GetStep() != "accepted" || frames[0].ReplyTo != 1 {
		return fmt.Errorf("frames %v", frames)
	}
	if r := frames[1].GetActionResult(); !r.Success || r.ActionId != id || string(r.Result) != params {
		return fmt.Errorf("result %v", r)
	}
	return nil
}

func TestCallsOverLiveSession(t *testing.T) {
	f := newCallsFixture(t)
	ctx := context.Background()

	if err := f.srv.Call(ctx, "node-1", echo("a0", "{}"), func(*pb.Envelope) (bool, error) { return true, nil }); !errors.Is(err, session.ErrNotConnected) || !strings.Contains(err.Error(), "node-1") {
		t.Fatalf("call before connect: %v", err)
	}
	a := f.agent(t, "node-1")
	if v, ok := f.srv.ProtocolVersion("node-1"); !ok || v != pb.ProtocolVersion {
		t.Fatalf("protocol %d %v", v, ok)
	}

	t.Run("deliver", func(t *testing.T) {
		if err := callEcho(ctx, f.srv, "node-1", "a1"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("concurrent", func(t *testing.T) {
		pings := f.srv.Pings()
		var wg sync.WaitGroup
		errs := make(chan error, 200)
		for i := range 200 {
			wg.Go(func() {
				cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
				defer cancel()
				if err := callEcho(cctx, f.srv, "node-1", fmt.Sprintf("c%d", i)); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		// Streams never hold up the control stream: two more pings (2 s apart).
		deadline := time.Now().Add(15 * time.Second)
		for f.srv.Pings() < pings+2 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if f.srv.Pings() < pings+2 {
			t.Fatalf("pings stalled at %d", f.srv.Pings())
		}
	})

	t.Run("cancel ends the handler", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		errc := make(chan error, 1)
		req := &pb.Envelope{Seq: 1, Body: &pb.Envelope_ActionAssign{ActionAssign: &pb.ActionAssign{ActionId: "blk", Command: "block"}}}
		go func() {
			errc <- f.srv.Call(cctx, "node-1", req, func(*pb.Envelope) (bool, error) { return false, nil })
		}()
		a.WaitID("blocking", "blk", 10*time.Second)
		cancel()
		select {
		case err := <-errc:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("call: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("call did not return on cancel")
		}
		a.WaitID("cancelled", "blk", 10*time.Second)
	})

	t.Run("done early ends a stats stream", func(t *testing.T) {
		n := 0
		req := &pb.Envelope{Seq: 9, Body: &pb.Envelope_StatsRequest{StatsRequest: &pb.StatsRequest{Target: "vm1", Stream: true}}}
		err := f.srv.Call(ctx, "node-1", req, func(env *pb.Envelope) (bool, error) {
			if env.GetStatsSample().GetTarget() != "vm1" || env.ReplyTo != 9 {
				return false, fmt.Errorf("frame %v", env)
			}
			n++
			return n == 3, nil
		})
		if err != nil || n != 3 {
			t.Fatalf("stats: %v after %d", err, n)
		}
		a.WaitID("cancelled", "stats", 10*time.Second)
	})

	t.Run("recv error", func(t *testing.T) {
		boom := errors.New("boom")
		err := f.srv.Call(ctx, "node-1", echo("e1", "{}"), func(*pb.Envelope) (bool, error) { return false, boom })
		if !errors.Is(err, boom) {
			t.Fatalf("call: %v", err)
		}
	})

	t.Run("inventory", func(t *testing.T) {
		var first *pb.Inventory
		select {
		case first = <-f.inv:
		case <-time.After(10 * time.Second):
			t.Fatal("no inventory")
		}
		if strings.Join(first.Templates, ",") != "base" || len(first.Vms) != 0 || first.TakenAtUnixMs == 0 {
			t.Fatalf("first inventory %v", first)
		}
		// Unchanged inventory is checked (every 200 ms) but not re-sent.
		for range 4 {
			a.WaitID("inventory_collected", "", 5*time.Second)
		}
		if n := f.invCount.Load(); n != 1 {
			t.Fatalf("%d inventory frames for an unchanged inventory", n)
		}
		if _, err := io.WriteString(a.Stdin, "inv vm1=running vm2=shutoff\n"); err != nil {
			t.Fatal(err)
		}
		select {
		case inv := <-f.inv:
			if len(inv.Vms) != 2 || inv.Vms[0].Name != "vm1" || inv.Vms[0].State != "running" || inv.Vms[1].State != "shutoff" {
				t.Fatalf("changed inventory %v", inv)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("changed inventory not sent")
		}
	})

	t.Run("disconnect", func(t *testing.T) {
		a.Kill()
		select {
		case id := <-f.disconnect:
			if id != "node-1" {
				t.Fatalf("disconnected %q", id)
			}
		case <-time.After(15 * time.Second):
			t.Fatal("no OnDisconnect")
		}
		err := f.srv.Call(ctx, "node-1", echo("late", "{}"), func(*pb.Envelope) (bool, error) { return true, nil })
		if !errors.Is(err, session.ErrNotConnected) {
			t.Fatalf("call after disconnect: %v", err)
		}
	})
}

// TestCallsPreviousMinorProtocol: an agent one minor version older (1.1)
// still gets a session, pings and actions.
func TestCallsPreviousMinorProtocol(t *testing.T) {
	f := newCallsFixture(t)
	f.agent(t, "old-1", "-protocol", "101")
	if v, ok := f.srv.ProtocolVersion("old-1"); !ok || v != 101 {
		t.Fatalf("protocol %d %v", v, ok)
	}
	first, _ := f.srv.Live("old-1")
	if err := callEcho(context.Background(), f.srv, "old-1", "old-a1"); err != nil {
		t.Fatal(err)
	}
	// One request per stream: no batch, and the agent's side ends when its
	// handler returns though ours is still open.
	if f.srv.Batches("old-1") {
		t.Fatal("a 1.1 agent is said to take batches")
	}
	unanswered(t, f.srv, "old-1")
	deadline := time.Now().Add(15 * time.Second) // pings 2 s apart
	for {
		last, ok := f.srv.Live("old-1")
		if ok && last.After(first) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no ping from the 1.1 agent")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestConsoleSealKeyOnlyToAgentsThatKnowIt: the HelloAck tells every agent
// the console public key, and the console sealing key (hpc2 tokens) only to
// an agent that announced protocol 1.5 or later: an agent of 1.4 is told no
// sealing key (it would not know the field, and a coordinator mints it hpc1
// tokens), nor is any agent by a coordinator that claims 1.4. Before, no
// agent was told a sealing key.
func TestConsoleSealKeyOnlyToAgentsThatKnowIt(t *testing.T) {
	signKey, sealKey := bytes.Repeat([]byte{0xa1}, 32), bytes.Repeat([]byte{0x5e}, 32)
	told := func(t *testing.T, a *framework.Sim) (sign, seal string) {
		t.Helper()
		deadline := time.After(30 * time.Second)
		for {
			select {
			case e := <-a.Events:
				switch e.Kind {
				case "console_key":
					sign = e.ID
				case "console_seal_key":
					seal = e.ID
				case "connected":
					return sign, seal
				}
			case <-deadline:
				t.Fatalf("no connected event; stderr:\n%s", a.Stderr.String())
			}
		}
	}
	for _, tc := range []struct {
		name               string
		coordinator        uint32 // 0: this build's
		agent              string // -protocol ("0": this build's)
		wantSign, wantSeal bool
	}{
		{"agent and coordinator of this build", 0, "0", true, true},
		{"an agent of 1.4", 0, "104", true, false},
		{"a coordinator of 1.4", 104, "0", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newCallsFixture(t, func(c *session.Config) {
				c.ConsoleKey = func() []byte { return signKey }
				c.ConsoleSealKey = func() []byte { return sealKey }
				c.ProtocolVersion = tc.coordinator
			})
			a := f.agent(t, "node-1", "-protocol", tc.agent)
			sign, seal := told(t, a)
			if (sign == hex.EncodeToString(signKey)) != tc.wantSign || (seal == hex.EncodeToString(sealKey)) != tc.wantSeal || !tc.wantSeal && seal != "" {
				t.Errorf("told console key %q, sealing key %q; want the console key %v, the sealing key %v", sign, seal, tc.wantSign, tc.wantSeal)
			}
		})
	}
}
