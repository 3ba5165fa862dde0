package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/ids"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/coordinator/internal/webhook"
	"github.com/hostplane/hostplane/pkg/api"
)

// heldDeliveries records n deliveries of wh (account acc, paused at level
// 2) held before their first attempt, as the dispatcher records them, in
// batches of 500; each carries an event of about 600 bytes of data. With
// outcome api.AttemptSucceeded they are delivered at their first attempt
// instead (rows of the attempt log, none queued).
func (w *whAPI) heldDeliveries(acc, wh string, n int, outcome string) {
	w.t.Helper()
	data := []byte(fmt.Sprintf(`{"ticket":{"id":"tkt_x","subject":%q}}`, strings.Repeat("x", 560)))
	start := time.Now().Add(-time.Hour)
	for i := 0; i < n; i += 500 {
		var recs []fsm.WebhookAttemptRecord
		for j := i; j < min(n, i+500); j++ {
			at := start.Add(time.Duration(j) * time.Millisecond)
			ev := store.Event{ID: ids.New("evt", at), Type: "ticket.created", AccountID: acc, CreatedAt: at, Data: data}
			rec := fsm.WebhookAttemptRecord{WebhookID: wh, DeliveryID: webhook.DeliveryID(ev.ID, wh, at), Chain: 1,
				At: at, Outcome: outcome, Event: &ev}
			if outcome != fsm.OutcomeHeld {
				rec.ID, rec.Number, rec.StatusCode = ids.New("att", at), 1, 204
			}
			recs = append(recs, rec)
		}
		w.apply(fsm.CmdWebhookAttempts, fsm.WebhookAttempts{Attempts: recs, Keep: 1000})
	}
}

// BenchmarkWebhookDeliveryList: one page (limit 50) of a paused
// subscription's delivery log holding 1,000 or 10,000 deliveries before
// their first attempt (queued rows): the first page, and the page a walk
// reads halfway through (page=10 by number; by cursor where the list takes
// one). delivered=1000 is the baseline: a log of 1,000 delivered
// deliveries (the attempts the log keeps), none queued.
func BenchmarkWebhookDeliveryList(b *testing.B) {
	for _, n := range []int{0, 1000, 10000} {
		outcome := fsm.OutcomeHeld
		name := fmt.Sprintf("held=%d", n)
		if n == 0 {
			n, outcome, name = 1000, api.AttemptSucceeded, "delivered=1000"
		}
		w := newWHAPI(b)
		w.apply(fsm.CmdClusterLevel, fsm.ClusterLevel{Level: 2})
		acc := w.newAccount()
		_, key := w.addKey(acc, fsm.KeyCreate{Scopes: []string{api.ScopeWebhooksRead}, RateLimitPerMin: 1_000_000})
		wh := w.subscribe(acc, "http://127.0.0.1:9/x", "*")
		paused := false
		w.apply(fsm.CmdWebhookUpdate, fsm.WebhookUpdate{ID: wh, AccountID: acc, Active: &paused})
		w.heldDeliveries(acc, wh, n, outcome)
		get := func(b *testing.B, query string) (total int, next string) {
			req, _ := http.NewRequest("GET", w.srv.URL+"/v1/webhooks/"+wh+"/deliveries?"+query, nil)
			req.Header.Set("Authorization", "Bearer "+key)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			defer resp.Body.Close()
			var p struct {
				Total      int     `json:"total"`
				NextCursor *string `json:"next_cursor"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&p); err != nil || resp.StatusCode != 200 {
				b.Fatalf("%s: %d %v", query, resp.StatusCode, err)
			}
			if p.NextCursor != nil {
				next = *p.NextCursor
			}
			return p.Total, next
		}
		if total, _ := get(b, "limit=50"); total != min(n, webhook.MaxQueuedScan) {
			b.Fatalf("total %d, want %d rows", total, min(n, webhook.MaxQueuedScan))
		}
		b.Run(name+"/first", func(b *testing.B) {
			for b.Loop() {
				get(b, "limit=50")
			}
		})
		b.Run(name+"/page10", func(b *testing.B) {
			for b.Loop() {
				get(b, "limit=50&page=10")
			}
		})
		_, cursor := get(b, "limit=50")
		for i := 0; i < 8 && cursor != ""; i++ {
			_, cursor = get(b, "limit=50&cursor="+cursor)
		}
		if cursor != "" {
			b.Run(name+"/cursor10", func(b *testing.B) {
				for b.Loop() {
					get(b, "limit=50&cursor="+cursor)
				}
			})
		}
	}
}
