package webhook

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/ids"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/internal/clock"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
	bolt "go.etcd.io/bbolt"
)

// testNode is an FSM without Raft: commands apply in order with increasing
// indexes, which is all the dispatcher can observe of a leader.
type testNode struct {
	t   testing.TB
	f   *fsm.FSM
	mu  sync.Mutex
	idx uint64
	now func() time.Time
}

func newTestNode(t testing.TB, now func() time.Time) *testNode {
	t.Helper()
	f, err := fsm.Open(filepath.Join(t.TempDir(), "fsm.db"), testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if now == nil {
		now = time.Now
	}
	return &testNode{t: t, f: f, now: now}
}

// newLevel2Node is newTestNode with the cluster at semantics level 2 (held
// deliveries), and the sealer of its subscriptions' secrets.
func newLevel2Node(t testing.TB, now func() time.Time) (*testNode, *Sealer) {
	t.Helper()
	n := newTestNode(t, now)
	n.must(fsm.CmdClusterLevel, fsm.ClusterLevel{Level: 2})
	return n, newTestSealer(t)
}

func testLog(t testing.TB) *slog.Logger {
	if os.Getenv("HOSTPLANE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.DiscardHandler)
}

func (n *testNode) Apply(ctx context.Context, env *fsm.Envelope) (*fsm.Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	data, err := env.Encode()
	if err != nil {
		return nil, err
	}
	n.mu.Lock()
	n.idx++
	res := n.f.Apply(&raft.Log{Index: n.idx, Type: raft.LogCommand, Data: data}).(*fsm.Result)
	n.mu.Unlock()
	if res.Err != nil {
		return nil, res.Err
	}
	return res, nil
}

func (n *testNode) must(typ fsm.CommandType, payload any) any {
	n.t.Helper()
	env, err := fsm.NewEnvelope(typ, n.now(), payload)
	if err != nil {
		n.t.Fatal(err)
	}
	res, err := n.Apply(context.Background(), env)
	if err != nil {
		n.t.Fatalf("apply %d: %v", typ, err)
	}
	return res.Value
}

func (n *testNode) newAccount() string {
	id := ids.New("acc", time.Now())
	n.must(fsm.CmdAccountCreate, fsm.AccountCreate{ID: id, Email: id + "@example.com", Name: "T", Country: "TR"})
	return id
}

// subscribedReceiver starts a plain-http receiver, creates an account and
// subscribes it to every event at the receiver's URL; the receiver verifies
// signatures with that subscription's secret.
func (n *testNode) subscribedReceiver(sealer *Sealer, clk clock.Clock) (rc *receiver, acc, whID string) {
	n.t.Helper()
	box := &secretBox{}
	rc = newReceiver(n.t, false, clk, box.get)
	acc = n.newAccount()
	whID, secret := n.subscribe(sealer, acc, rc.srv.URL)
	box.set(secret)
	return rc, acc, whID
}

// subscribe creates a subscription and returns its id and plaintext secret.
func (n *testNode) subscribe(sealer *Sealer, account, url string, events ...string) (string, string) {
	n.t.Helper()
	if len(events) == 0 {
		events = []string{"*"}
	}
	id := ids.New("wh", time.Now())
	secret, hint := NewSecret()
	sealed, err := sealer.Seal(id, secret)
	if err != nil {
		n.t.Fatal(err)
	}
	n.must(fsm.CmdWebhookCreate, fsm.WebhookCreate{ID: id, AccountID: account, URL: url, Events: events, SealedSecret: sealed, SecretHint: hint, MaxPerAccount: 20})
	return id, secret
}

// setActive pauses (false) or resumes (true) the subscription id of account.
func (n *testNode) setActive(account, id string, active bool) {
	n.must(fsm.CmdWebhookUpdate, fsm.WebhookUpdate{ID: id, AccountID: account, Active: &active})
}

func (n *testNode) rotate(sealer *Sealer, account, id string) string {
	secret, hint := NewSecret()
	sealed, _ := sealer.Seal(id, secret)
	n.must(fsm.CmdWebhookRotateSecret, fsm.WebhookRotateSecret{ID: id, AccountID: account, SealedSecret: sealed, SecretHint: hint})
	return secret
}

// ticket opens a ticket (a ticket.created event) and returns its id.
func (n *testNode) ticket(account, subject string) string {
	id := ids.New("tkt", time.Now())
	n.must(fsm.CmdTicketCreate, fsm.TicketCreate{ID: id, AccountID: account, MessageID: ids.New("msg", time.Now()), Subject: subject, Message: "m", Department: "technical", Priority: "high"})
	return id
}

func (n *testNode) delivery(webhookID, deliveryID string) (store.Delivery, bool) {
	var d store.Delivery
	err := n.f.View(func(tx *bolt.Tx) error {
		return store.GetJSON(tx, store.BucketWebhookDeliveries, store.WebhookKey(webhookID, deliveryID), &d)
	})
	return d, err == nil
}

func (n *testNode) attempts(webhookID string) []api.WebhookAttempt {
	var out []api.WebhookAttempt
	_ = n.f.View(func(tx *bolt.Tx) error {
		var err error
		out, _, err = store.ListOwned[api.WebhookAttempt](tx, store.BucketWebhookAttempts, webhookID, 0, 100000)
		return err
	})
	// ListOwned is newest first; the tests read oldest first.
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

func newTestSealer(t testing.TB) *Sealer {
	key := make([]byte, KEKSize)
	for i := range key {
		key[i] = byte(i * 7)
	}
	s, err := NewSealer(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// ---- The test receiver. Its signature check is written from SPEC.md on purpose,
// not with pkg/webhook: "X-Sunucu-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret,
// "<t>." + body)>".

type received struct {
	at       time.Time // receiver's (test) clock
	wall     time.Time
	body     []byte
	header   http.Header
	event    string
	delivery string
	sigErr   error
}

// verifySpec checks a signature header as SPEC.md describes it.
func verifySpec(secret, header string, body []byte, now time.Time, tolerance time.Duration) error {
	var ts string
	var sigs []string
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return errors.New("malformed element")
		}
		switch k {
		case "t":
			ts = v
		case "v1":
			sigs = append(sigs, v)
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return errors.New("bad t")
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return errors.New("timestamp too old")
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts + "." + string(body)))
	want := hex.EncodeToString(m.Sum(nil))
	for _, s := range sigs {
		if hmac.Equal([]byte(s), []byte(want)) {
			return nil
		}
	}
	return errors.New("signature mismatch")
}

type receiver struct {
	mu       sync.Mutex
	got      []received
	secrets  func() []string // accepted secrets
	status   func(n int, r *http.Request) int
	clock    clock.Clock
	location string // sent as Location when set
	srv      *httptest.Server
	notify   chan struct{}
}

// failWhileDown makes rc answer failCode while the returned flag is set (it
// starts set) and okCode once it is cleared.
func (rc *receiver) failWhileDown(failCode, okCode int) *atomic.Bool {
	down := &atomic.Bool{}
	down.Store(true)
	rc.status = func(int, *http.Request) int {
		if down.Load() {
			return failCode
		}
		return okCode
	}
	return down
}

func newReceiver(t testing.TB, tlsOn bool, clk clock.Clock, secrets func() []string) *receiver {
	rc := &receiver{secrets: secrets, clock: clk, notify: make(chan struct{}, 1<<16)}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rv := received{at: rc.clock.Now(), wall: time.Now(), body: body, header: r.Header.Clone(),
			event: r.Header.Get("X-Sunucu-Event"), delivery: r.Header.Get("X-Sunucu-Delivery")}
		rv.sigErr = errors.New("no secret matched")
		for _, s := range rc.secrets() {
			if err := verifySpec(s, r.Header.Get("X-Sunucu-Signature"), body, rc.clock.Now(), 5*time.Minute); err == nil {
				rv.sigErr = nil
				break
			}
		}
		rc.mu.Lock()
		n := len(rc.got)
		rc.got = append(rc.got, rv)
		statusFn := rc.status
		rc.mu.Unlock()
		status := 200
		if statusFn != nil {
			status = statusFn(n, r)
		}
		if rv.sigErr != nil && status < 300 {
			status = 401
		}
		if rc.location != "" {
			w.Header().Set("Location", rc.location)
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(`{"ok":` + strconv.FormatBool(status < 300) + `}`))
		rc.notify <- struct{}{}
	})
	if tlsOn {
		rc.srv = httptest.NewTLSServer(h)
	} else {
		rc.srv = httptest.NewServer(h)
	}
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) tlsConfig() *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(rc.srv.Certificate())
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}

func (rc *receiver) all() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.got...)
}

// waitFor waits (real time) until cond holds over the received requests.
func (rc *receiver) waitFor(t testing.TB, what string, timeout time.Duration, cond func([]received) bool) []received {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := rc.all()
		if cond(got) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; got %d requests", what, len(got))
		}
		select {
		case <-rc.notify:
		case <-time.After(10 * time.Millisecond):
		}
	}
}

type startedDispatcher struct {
	d      *Dispatcher
	cancel context.CancelFunc
	done   chan struct{}
}

func (s *startedDispatcher) stop() {
	s.cancel()
	<-s.done
}

// start runs a dispatcher for node until the test ends or stop is called.
func start(t testing.TB, node *testNode, sealer *Sealer, guard *Guard, tlsCfg *tls.Config, clk clock.Clock, opt Options) *startedDispatcher {
	t.Helper()
	if opt.FlushInterval == 0 {
		opt.FlushInterval = 10 * time.Millisecond
	}
	if opt.PollInterval == 0 {
		opt.PollInterval = 2 * time.Millisecond
	}
	if opt.AttemptTimeout == 0 {
		opt.AttemptTimeout = 5 * time.Second
	}
	d := New(opt, node.f, node.Apply, sealer, guard.Client(opt.AttemptTimeout, tlsCfg, 64), clk, testLog(t))
	ctx, cancel := context.WithCancel(context.Background())
	s := &startedDispatcher{d: d, cancel: cancel, done: make(chan struct{})}
	go func() { defer close(s.done); _ = d.Run(ctx) }()
	t.Cleanup(s.stop)
	return s
}

// waitUntil polls cond (real time).
func waitUntil(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	framework.WaitFor(t, what, timeout, 2*time.Millisecond, cond)
}

func decodeBody(t testing.TB, b []byte) (out struct {
	ID        string         `json:"id"`
	Type      string         `json:"type"`
	CreatedAt time.Time      `json:"created_at"`
	Data      map[string]any `json:"data"`
}) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&out); err != nil {
		t.Fatalf("delivery body %s: %v", b, err)
	}
	return out
}
