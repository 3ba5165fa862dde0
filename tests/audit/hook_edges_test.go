package audit

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// TestHookEdges: the corners of a subscription a careless customer finds.
// An event named twice (or also under "*") is sent once. The per-account
// limit on subscriptions is a clear 4xx, and a delete makes room again. A
// URL fixed with PATCH while a delivery is being retried receives the
// retries. A retried rotate-secret with one Idempotency-Key never shows the
// same secret twice. A redeliver retried with one Idempotency-Key sends once.
// A deleted webhook's delivery cannot be redelivered. The delivered request
// is JSON with a UTC created_at. No signing secret, shown or rotated away,
// is written in the clear in any coordinator's data directory or log.
// Tickets opened at once through all three coordinators get distinct
// numbers 1…n.
func TestHookEdges(t *testing.T) {
	// Mostly waits (see "Parallel tests" in audit_test.go).
	t.Parallel()
	r := hookRig(t, "--webhook-max-per-account", "5")
	f := r.follower()
	var secrets []string
	del := func(id string) {
		t.Helper()
		r.remove(t, f, r.keyA, "/v1/webhooks/"+id)
	}

	t.Run("an event named twice is sent once", func(t *testing.T) {
		s := newSink(t, nil)
		rep := r.call(f, r.keyA, "POST", "/v1/webhooks", map[string]any{"url": s.URL, "events": []string{"ticket.created", "ticket.created", "*"}}, nil)
		if rep.Status == 400 {
			return
		}
		if rep.Status != 201 {
			t.Fatalf("%s", rep)
		}
		var wh api.Webhook
		rep.Decode(t, &wh)
		secrets = append(secrets, wh.Secret)
		tk := r.ticket(f, r.keyA, "twice")
		s.waitAbout(t, "ticketId", tk.ID, 1, 20*time.Second)
		time.Sleep(2 * time.Second)
		if n := len(s.about("ticketId", tk.ID)); n != 1 {
			t.Errorf("events %v: %d requests for one ticket.created", wh.Events, n)
		}
		del(wh.ID)
	})

	t.Run("the per-account limit", func(t *testing.T) {
		s := newSink(t, nil)
		var ids []string
		for i := range 5 {
			wh := r.hook(r.keyA, s.URL+fmt.Sprint(i), "ticket.replied")
			secrets = append(secrets, wh.Secret)
			ids = append(ids, wh.ID)
		}
		rep := r.call(f, r.keyA, "POST", "/v1/webhooks", api.WebhookCreateRequest{URL: s.URL + "x", Events: []string{"*"}}, nil)
		if rep.Status < 400 || rep.Status >= 500 || rep.Status == 404 || !strings.Contains(string(rep.Body), "5") {
			t.Errorf("a 6th webhook with a limit of 5: %s; want a 4xx saying the limit", rep)
		}
		// B has its own room.
		secrets = append(secrets, r.hook(r.keyB, s.URL+"b", "*").Secret)
		del(ids[0])
		wh := r.hook(r.keyA, s.URL+"y", "ticket.replied")
		secrets = append(secrets, wh.Secret)
		for _, id := range append(ids[1:], wh.ID) {
			del(id)
		}
	})

	t.Run("a URL fixed while retrying gets the retries", func(t *testing.T) {
		broken := newSink(t, func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(404) })
		fixed := newSink(t, nil)
		wh := r.hook(r.keyA, broken.URL, "ticket.created")
		secrets = append(secrets, wh.Secret)
		tk := r.ticket(f, r.keyA, "typo in the url")
		first := broken.waitAbout(t, "ticketId", tk.ID, 1, 20*time.Second)[0]
		if rep := r.call(f, r.keyA, "PATCH", "/v1/webhooks/"+wh.ID, map[string]any{"url": fixed.URL}, nil); rep.Status != 200 {
			t.Fatalf("%s", rep)
		}
		cut := time.Now().Add(300 * time.Millisecond)
		h := fixed.waitAbout(t, "ticketId", tk.ID, 1, 30*time.Second)[0]
		if h.header.Get("X-Sunucu-Delivery") != first.header.Get("X-Sunucu-Delivery") {
			t.Errorf("the retry at the new URL is delivery %s, the first attempt %s", h.header.Get("X-Sunucu-Delivery"), first.header.Get("X-Sunucu-Delivery"))
		}
		for _, h := range broken.all() {
			if h.at.After(cut) {
				t.Errorf("the old URL got a request %s after the PATCH", h.at.Sub(cut))
			}
		}
		// Redelivering it later, with one Idempotency-Key sent three
		// times, sends it once more.
		d := h.header.Get("X-Sunucu-Delivery")
		hdr := map[string]string{"Idempotency-Key": "redeliver-once"}
		for i := range 3 {
			if rep := r.call(i, r.keyA, "POST", "/v1/webhooks/"+wh.ID+"/deliveries/"+d+"/redeliver", nil, hdr); rep.Status != 202 {
				t.Errorf("redeliver %d: %s", i+1, rep)
			}
		}
		time.Sleep(3 * time.Second)
		if n := len(fixed.about("ticketId", tk.ID)); n != 2 {
			t.Errorf("the fixed URL got %d requests for the ticket after one redeliver sent three times with one key; want 2", n)
		}
		// Rotation retried with one Idempotency-Key.
		hdr = map[string]string{"Idempotency-Key": "rotate-once"}
		var shown []string
		for i := range 2 {
			rep := r.call(i, r.keyA, "POST", "/v1/webhooks/"+wh.ID+"/rotate-secret", nil, hdr)
			var got api.Webhook
			rep.Decode(t, &got)
			if rep.Status != 200 {
				t.Errorf("rotate %d: %s", i+1, rep)
			}
			if !strings.Contains(got.Secret, "•") {
				shown = append(shown, got.Secret)
				secrets = append(secrets, got.Secret)
			}
		}
		if len(shown) == 2 && shown[0] == shown[1] {
			t.Errorf("a rotate-secret retried with one Idempotency-Key showed the secret %q twice (it was stored to replay it)", shown[0])
		}
		del(wh.ID)
		if rep := r.call(f, r.keyA, "POST", "/v1/webhooks/"+wh.ID+"/deliveries/"+d+"/redeliver", nil, nil); rep.Status != 404 {
			t.Errorf("redeliver under a deleted webhook: %s; want 404", rep)
		}
	})

	t.Run("the request a receiver gets", func(t *testing.T) {
		s := newSink(t, nil)
		wh := r.hook(r.keyA, s.URL, "ticket.created")
		secrets = append(secrets, wh.Secret)
		tk := r.ticket(f, r.keyA, "shape")
		h := s.waitAbout(t, "ticketId", tk.ID, 1, 20*time.Second)[0]
		ev := h.event(t)
		if !strings.HasPrefix(h.header.Get("Content-Type"), "application/json") || ev.CreatedAt.Location() != time.UTC || !bytes.Contains(h.body, []byte(`"created_at":"`)) ||
			!strings.HasSuffix(strings.Split(strings.Split(string(h.body), `"created_at":"`)[1], `"`)[0], "Z") {
			t.Errorf("request: Content-Type %q, body %s", h.header.Get("Content-Type"), h.body)
		}
		rot := r.call(f, r.keyA, "POST", "/v1/webhooks/"+wh.ID+"/rotate-secret", nil, nil)
		var got api.Webhook
		rot.Decode(t, &got)
		secrets = append(secrets, got.Secret)
		del(wh.ID)
	})

	t.Run("ticket numbers under concurrency", func(t *testing.T) {
		_, before := r.ticketList(0, r.keyB, "")
		var wg sync.WaitGroup
		var failed atomic.Int32
		for i := range 30 {
			wg.Go(func() {
				rep := r.apis[i%3].Call(r.keyB, "POST", "/v1/tickets", api.TicketCreateRequest{Subject: fmt.Sprint("c", i), Message: "m"}, nil)
				if rep.Status != 201 {
					failed.Add(1)
					t.Errorf("%s", rep)
				}
			})
		}
		wg.Wait()
		l, total := r.ticketList(0, r.keyB, "?limit=200")
		nums := map[int64]bool{}
		for _, tk := range l {
			nums[tk.Number] = true
		}
		if total != before+30-int(failed.Load()) || len(nums) != total {
			t.Errorf("%d tickets with %d distinct numbers (before %d)", total, len(nums), before)
		}
		for n := int64(1); n <= int64(total); n++ {
			if !nums[n] {
				t.Errorf("no ticket number %d among %d", n, total)
			}
		}
	})

	// No secret in the clear on disk or in a log.
	time.Sleep(time.Second)
	for _, s := range secrets {
		if len(s) < 20 || strings.Contains(s, "•") {
			t.Errorf("a secret shown as %q", s)
		}
	}
	files, err := framework.ScanFiles(r.c.Dir, func(path string, raw []byte) {
		for _, s := range secrets {
			body := strings.TrimPrefix(s, "whsec_")
			if bytes.Contains(raw, []byte(body)) {
				t.Errorf("%s holds a signing secret in the clear", path)
			}
		}
	})
	if err != nil || files < 6 {
		t.Errorf("walked %d files under %s: %v", files, r.c.Dir, err)
	}
}
