package clustertest

import (
	"context"
	"fmt"
	"os"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/ids"
	"github.com/hostplane/hostplane/coordinator/internal/server"
	"github.com/hostplane/hostplane/coordinator/internal/testcluster"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// TestWebhookThroughput is the delivery benchmark (skipped unless
// HOSTPLANE_WEBHOOK_BENCH=1): a 3-node cluster, 50 accounts × 20 subscriptions =
// 1,000 subscriptions to one loopback receiver that checks every signature,
// HOSTPLANE_WEBHOOK_BENCH_EVENTS wallet deposits (default 1,000, i.e. 20,000
// deliveries). It reports deliveries/s until the last first attempt arrived and
// until every attempt was recorded through Raft, and the latency from an event's
// commit (its proposal returning on the leader) to its first delivery attempt
// arriving at the receiver.
//
//	HOSTPLANE_WEBHOOK_BENCH=1 go test -run TestWebhookThroughput -v -count=1 ./coordinator/internal/webhook/clustertest/
func TestWebhookThroughput(t *testing.T) {
	if os.Getenv("HOSTPLANE_WEBHOOK_BENCH") == "" {
		t.Skip("set HOSTPLANE_WEBHOOK_BENCH=1 to run the webhook benchmark")
	}
	events := 1000
	if v := os.Getenv("HOSTPLANE_WEBHOOK_BENCH_EVENTS"); v != "" {
		fmt.Sscan(v, &events)
	}
	const accounts, perAccount = 50, 20
	kek := sharedKEK(t)
	// Production Raft timeouts (the harness shortens them for failover tests).
	prodRaft := func(_ int, cfg *server.Config) {
		d := server.Defaults()
		cfg.HeartbeatTimeout, cfg.ElectionTimeout = d.HeartbeatTimeout, d.ElectionTimeout
	}
	c := testcluster.New(t, 3, testcluster.WithRateLimit(1_000_000), prodRaft, withWebhooks(kek, func(w *server.WebhookConfig) {
		w.FlushInterval = 50 * time.Millisecond
		w.MaxPerAccount = perAccount
	}))
	rc := newSink(t, 0)
	ctx := context.Background()
	ld := c.WaitLeader(10 * time.Second)
	accIDs, keys := make([]string, accounts), make([]string, accounts)
	for a := range accounts {
		acc, key := c.NewAccount(fmt.Sprintf("bench%d@example.com", a))
		accIDs[a], keys[a] = acc.ID, key
	}
	// Each account's subscriptions from a goroutine of its own.
	err := framework.Parallel(accounts, accounts, func(a int) error {
		cl := c.Client(ld, keys[a])
		for i := 0; i < perAccount; i++ {
			sub := fmt.Sprintf("%d", a*perAccount+i)
			w, err := cl.CreateWebhook(ctx, api.WebhookCreateRequest{URL: rc.srv.URL + "/h/" + sub, Events: []string{"wallet.deposit.received"}}, "")
			if err != nil {
				return err
			}
			rc.setSecret(sub, w.Secret)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	leader := c.Nodes[ld].Server
	t.Logf("%d subscriptions ready on leader n%d", accounts*perAccount, ld+1)

	var commitMu sync.Mutex
	commit := map[string]time.Time{} // transactionId → commit
	start := time.Now()
	err = framework.Parallel(events, 16, func(i int) error {
		txID := ids.New("wtx", time.Now())
		env, _ := fsm.NewEnvelope(fsm.CmdWalletCredit, time.Now(), fsm.WalletCredit{TxID: txID, AccountID: accIDs[i%accounts], AmountUsdCents: 100, Gateway: "bench"})
		if _, err := leader.API.Apply(ctx, env); err != nil {
			return err
		}
		at := time.Now()
		commitMu.Lock()
		commit[txID] = at
		commitMu.Unlock()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	committed := time.Since(start)
	t.Logf("events: %d committed in %s (%.0f/s)", events, committed.Round(time.Millisecond), float64(events)/committed.Seconds())
	want := events * perAccount
	waitFor(t, "every delivery", 5*time.Minute, func() bool { return len(rc.snapshot()) >= want })
	hits := rc.snapshot()
	first := map[string]time.Time{}
	var last time.Time
	for _, h := range hits {
		if _, ok := first[h.delivery]; !ok {
			first[h.delivery] = h.at
			if h.at.After(last) {
				last = h.at
			}
		}
	}
	delivered := last.Sub(start)
	waitFor(t, "every attempt recorded", 5*time.Minute, func() bool { return countDeliveries(leader) >= want })
	recorded := time.Since(start)

	var lat []time.Duration
	early := 0
	for _, h := range hits {
		if first[h.delivery] != h.at {
			continue
		}
		tx, _ := h.data["transactionId"].(string)
		ct, ok := commit[tx]
		if !ok {
			t.Fatalf("delivery of unknown transaction %q", tx)
		}
		d := h.at.Sub(ct)
		if d < 0 { // arrived before the proposer saw its own apply return
			early++
			d = 0
		}
		lat = append(lat, d)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) time.Duration { return lat[int(p*float64(len(lat)-1))] }
	t.Logf("deliveries: %d distinct (%d requests, %d bad signatures)", len(first), len(hits), rc.bad.Load())
	t.Logf("throughput to last first attempt: %.0f deliveries/s (%s)", float64(len(first))/delivered.Seconds(), delivered.Round(time.Millisecond))
	t.Logf("throughput until all recorded through Raft: %.0f deliveries/s (%s)", float64(want)/recorded.Seconds(), recorded.Round(time.Millisecond))
	t.Logf("commit → first attempt: p50 %s, p90 %s, p99 %s, max %s (%d arrived before the proposer's Apply returned)",
		pct(0.5).Round(time.Millisecond), pct(0.9).Round(time.Millisecond), pct(0.99).Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond), early)
	if rc.bad.Load() != 0 || len(first) != want {
		t.Fatalf("bad signatures %d, deliveries %d of %d", rc.bad.Load(), len(first), want)
	}
}
