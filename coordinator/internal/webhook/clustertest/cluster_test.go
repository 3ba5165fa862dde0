package clustertest

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/server"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/coordinator/internal/testcluster"
	"github.com/hostplane/hostplane/coordinator/internal/webhook"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
	bolt "go.etcd.io/bbolt"
)

// withWebhooks gives every node the same KEK file (as an operator must) and the
// development flags the loopback receiver needs.
func withWebhooks(kek string, tune func(*server.WebhookConfig)) testcluster.Option {
	return func(_ int, c *server.Config) {
		c.Webhooks.KEKFile = kek
		c.Webhooks.AllowHTTP = true
		c.Webhooks.AllowPrivate = true
		c.Webhooks.FlushInterval = 20 * time.Millisecond
		if tune != nil {
			tune(&c.Webhooks)
		}
	}
}

func sharedKEK(t testing.TB) string {
	p := filepath.Join(t.TempDir(), "kek")
	if _, err := webhook.LoadOrCreateKEK(p, true); err != nil {
		t.Fatal(err)
	}
	return p
}

type hit struct {
	sub      string
	delivery string
	event    string
	typ      string
	data     map[string]any
	at       time.Time
}

// sink is a loopback receiver; subscription n posts to /h/<n>.
type sink struct {
	mu      sync.Mutex
	secrets map[string]string
	hits    []hit
	bad     atomic.Int64
	delay   time.Duration
	srv     *httptest.Server
}

func newSink(t testing.TB, delay time.Duration) *sink {
	s := &sink{secrets: map[string]string{}, delay: delay}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		at := time.Now()
		body, _ := io.ReadAll(r.Body)
		sub := strings.TrimPrefix(r.URL.Path, "/h/")
		s.mu.Lock()
		secret := s.secrets[sub]
		s.mu.Unlock()
		if !framework.WebhookSignatureOK(secret, r.Header.Get("X-Sunucu-Signature"), body, 5*time.Minute) {
			s.bad.Add(1)
			w.WriteHeader(401)
			return
		}
		var ev struct {
			ID   string         `json:"id"`
			Type string         `json:"type"`
			Data map[string]any `json:"data"`
		}
		_ = json.Unmarshal(body, &ev)
		if s.delay > 0 {
			time.Sleep(s.delay)
		}
		s.mu.Lock()
		s.hits = append(s.hits, hit{sub: sub, delivery: r.Header.Get("X-Sunucu-Delivery"), event: ev.ID, typ: ev.Type, data: ev.Data, at: at})
		s.mu.Unlock()
		w.WriteHeader(204)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *sink) setSecret(sub, secret string) {
	s.mu.Lock()
	s.secrets[sub] = secret
	s.mu.Unlock()
}

// hook subscribes key's account to ticket.created at the sink's /h/0 (on
// the leader, sent again while it answers 503) and keeps its secret.
func (s *sink) hook(ctx context.Context, c *testcluster.Cluster, key string) api.Webhook {
	var wh api.Webhook
	c.Retry503(func() (err error) {
		wh, err = c.Client(c.WaitLeader(10*time.Second), key).CreateWebhook(ctx, api.WebhookCreateRequest{URL: s.srv.URL + "/h/0", Events: []string{"ticket.created"}}, "")
		return err
	})
	s.setSecret("0", wh.Secret)
	return wh
}

func (s *sink) snapshot() []hit {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]hit(nil), s.hits...)
}

// TestLeaderKilledWithDeliveriesInFlight: tickets are opened while the receiver
// is slow, the leader is killed mid-stream, and every ticket.created event of a
// ticket acknowledged (committed) before or after the kill reaches the receiver.
// Duplicates are allowed and carry the same X-Sunucu-Delivery.
func TestLeaderKilledWithDeliveriesInFlight(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	kek := sharedKEK(t)
	// Two attempts in flight per subscription and a slow receiver: deliveries
	// queue up behind the commits, so many are in flight when the leader dies.
	c := testcluster.New(t, 3, testcluster.WithRateLimit(1_000_000), withWebhooks(kek, func(w *server.WebhookConfig) { w.PerWebhook = 2 }))
	rc := newSink(t, 40*time.Millisecond)
	_, key := c.NewAccount("hooks@example.com")
	ctx := context.Background()
	ld := c.WaitLeader(10 * time.Second)
	var wh api.Webhook
	c.Retry503(func() (err error) {
		wh, err = c.Client(ld, key).CreateWebhook(ctx, api.WebhookCreateRequest{URL: rc.srv.URL + "/h/0", Events: []string{"ticket.created"}}, "")
		return err
	})
	rc.setSecret("0", wh.Secret)

	var (
		mu    sync.Mutex
		acked = map[string]bool{} // ticket ids committed
		n     atomic.Int64
	)
	stop := c.TicketLoad(key, 8, "m", func(_ int, tk api.Ticket, err error) {
		if err == nil {
			mu.Lock()
			acked[tk.ID] = true
			mu.Unlock()
			n.Add(1)
		}
	})
	waitFor(t, "150 tickets before the kill", 20*time.Second, func() bool { return n.Load() >= 150 })
	old := c.Leader()
	inFlight := n.Load() - int64(len(rc.snapshot()))
	c.Kill(old)
	t.Logf("killed leader n%d with about %d deliveries not yet received", old+1, inFlight)
	waitFor(t, "new leader", 15*time.Second, func() bool { l := c.Leader(); return l >= 0 && l != old })
	waitFor(t, "150 tickets after the kill", 30*time.Second, func() bool { return n.Load() >= 300 })
	stop()

	mu.Lock()
	want := len(acked)
	mu.Unlock()
	waitFor(t, "every acknowledged ticket delivered", 60*time.Second, func() bool {
		got := map[string]bool{}
		for _, h := range rc.snapshot() {
			if id, _ := h.data["ticketId"].(string); acked[id] {
				got[id] = true
			}
		}
		return len(got) == want
	})
	byEvent := map[string]string{}
	dups := 0
	for _, h := range rc.snapshot() {
		if d, ok := byEvent[h.event]; ok {
			dups++
			if d != h.delivery {
				t.Fatalf("event %s arrived under deliveries %s and %s", h.event, d, h.delivery)
			}
		}
		byEvent[h.event] = h.delivery
	}
	if rc.bad.Load() != 0 {
		t.Fatalf("%d requests with a bad signature", rc.bad.Load())
	}
	t.Logf("%d acknowledged tickets, all delivered; %d duplicate requests (same delivery id)", want, dups)
}

func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	framework.WaitFor(t, what, timeout, 20*time.Millisecond, cond)
}

// countDeliveries counts succeeded delivery records in a node's FSM.
func countDeliveries(s *server.Server) (succeeded int) {
	_ = s.Node.FSM.View(func(tx *bolt.Tx) error {
		return tx.Bucket(store.BucketWebhookDeliveries).ForEach(func(_, v []byte) error {
			if strings.Contains(string(v), `"status":"succeeded"`) {
				succeeded++
			}
			return nil
		})
	})
	return succeeded
}
