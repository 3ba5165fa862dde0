package audit

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// TestHookDeliveriesAcrossLeaderKill: tickets are opened through every
// coordinator (each with its own Idempotency-Key, retried on an error as a
// client would) while the leader is SIGKILLed twice, and a receiver that
// takes 300 ms per request (and fails every fifth one) keeps deliveries in
// flight across the kills. Every ticket the API confirmed reaches the
// receiver (no event lost), none the API did not confirm does, and every
// request about one ticket carries one event id and one X-Sunucu-Delivery
// (duplicates are allowed, and a receiver can drop them by that id), each
// signed with the webhook's secret.
func TestHookDeliveriesAcrossLeaderKill(t *testing.T) {
	// Mostly waits (see "Parallel tests" in audit_test.go).
	t.Parallel()
	r := hookRig(t)
	var mu sync.Mutex
	n := 0
	s := newSink(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		time.Sleep(300 * time.Millisecond)
		mu.Lock()
		n++
		fail := n%5 == 0
		mu.Unlock()
		if fail {
			w.WriteHeader(502)
			return
		}
		w.WriteHeader(204)
	})
	wh := r.hook(r.keyA, s.URL, "ticket.created")

	const total = 40
	created := map[string]api.Ticket{}
	open := func(k int) {
		key := fmt.Sprintf("failover-%d", k)
		deadline := time.Now().Add(60 * time.Second)
		for i := k; ; i++ {
			c := i % r.c.Len()
			if !r.c.Running(c) {
				continue
			}
			rep, err := r.apis[c].Try(r.keyA, "POST", "/v1/tickets", api.TicketCreateRequest{Subject: key, Message: "m"}, map[string]string{"Idempotency-Key": key})
			if err == nil && rep.Status == 201 {
				var tk api.Ticket
				rep.Decode(t, &tk)
				if prev, ok := created[key]; ok && prev.ID != tk.ID {
					t.Errorf("one Idempotency-Key made two tickets: %s and %s", prev.ID, tk.ID)
				}
				created[key] = tk
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("ticket %s not created within 60 s: %v %s", key, err, rep)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	killed := map[int]bool{}
	for k := range total {
		open(k)
		if k == 12 || k == 26 {
			ld, err := r.c.LeaderIndexSkipping(killed, 20*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("killing the leader, coordinator %d, after ticket %d", ld, k)
			r.c.Kill(ld)
			killed[ld] = true
			if k == 26 {
				// Keep a quorum: the first one killed comes back.
				for i := range killed {
					if i != ld {
						r.c.Restart(i)
						r.c.WaitReady(i, 30*time.Second)
						delete(killed, i)
					}
				}
			}
		}
	}
	for i := range killed {
		r.c.Restart(i)
		r.c.WaitReady(i, 30*time.Second)
	}
	if len(created) != total {
		t.Fatalf("%d tickets created", len(created))
	}
	framework.WaitFor(t, "every ticket's ticket.created", 90*time.Second, 250*time.Millisecond, func() bool {
		for _, tk := range created {
			if len(s.about("ticketId", tk.ID)) == 0 {
				return false
			}
		}
		return true
	})
	time.Sleep(2 * time.Second) // retries of the failed fifths
	ids := map[string]bool{}
	dups := 0
	for _, tk := range created {
		ids[tk.ID] = true
		hits := s.about("ticketId", tk.ID)
		events, deliveries, ok := map[string]bool{}, map[string]bool{}, 0
		for _, h := range hits {
			events[h.event(t).ID] = true
			deliveries[h.header.Get("X-Sunucu-Delivery")] = true
			if good, _, err := signedBy(wh.Secret, h.header.Get("X-Sunucu-Signature"), h.body); good && err == nil {
				ok++
			}
		}
		if len(events) != 1 || len(deliveries) != 1 || deliveries[""] || ok != len(hits) {
			t.Errorf("ticket %s: %d requests with %d event ids and %d delivery ids (%v), %d signed; want one of each, all signed", tk.ID, len(hits), len(events), len(deliveries), deliveries, ok)
		}
		dups += len(hits) - 1
	}
	for _, h := range s.all() {
		if id := fmt.Sprint(h.event(t).Data["ticketId"]); !ids[id] {
			t.Errorf("a delivery for ticket %s, which the API never confirmed", id)
		}
	}
	t.Logf("%d tickets, %d requests in all (%d repeats, including the receiver's 502s)", total, len(s.all()), dups)
}
