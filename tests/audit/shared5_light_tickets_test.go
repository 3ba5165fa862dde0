package audit

import (
	"bytes"
	"strings"
	"sync"
	"testing"

	"github.com/hostplane/hostplane/pkg/api"
)

// TestTicketsOutsideIn: ticket numbers tell a customer nothing of other
// customers' tickets (issue 10, item 6: numbered per account); a ticket
// create with an Idempotency-Key replays its first answer, status and body,
// on every coordinator, also when sent to all three at once, and makes one
// ticket; the key with another body is a 422; another account's reply and
// close are 404s that leave the thread as it was.
func TestTicketsOutsideIn(t *testing.T) {
	r := sharedLightRig(t, "light")
	f := r.follower()
	open := func(key, subject string, hdr map[string]string) api.Ticket {
		t.Helper()
		rep := r.call(f, key, "POST", "/v1/tickets", api.TicketCreateRequest{Subject: subject, Message: "m"}, hdr)
		if rep.Status != 201 {
			t.Fatalf("ticket: %s", rep)
		}
		var tk api.Ticket
		rep.Decode(t, &tk)
		return tk
	}
	a1 := open(r.keyA, "a1", nil)
	for i := 2; i <= 5; i++ {
		open(r.keyA, "a", nil)
	}
	b1 := open(r.keyB, "b1", nil)
	if b1.Number != a1.Number {
		t.Errorf("B's first ticket is number %d after A opened 5 (A's first: %d): numbers count other accounts' tickets", b1.Number, a1.Number)
	}
	if b2 := open(r.keyB, "b2", nil); b2.Number != b1.Number+1 {
		t.Errorf("B's second ticket is number %d, its first %d", b2.Number, b1.Number)
	}

	// Idempotency-Key: the first answer, byte for byte, on every coordinator.
	body := api.TicketCreateRequest{Subject: "once", Message: "only once"}
	hdr := map[string]string{"Idempotency-Key": "tk-once"}
	first := r.call(f, r.keyA, "POST", "/v1/tickets", body, hdr)
	if first.Status != 201 {
		t.Fatalf("ticket: %s", first)
	}
	for i := range r.c.Len() {
		again := r.call(i, r.keyA, "POST", "/v1/tickets", body, hdr)
		if again.Status != first.Status || !bytes.Equal(again.Body, first.Body) {
			t.Errorf("coordinator %d: replay %s; want the first answer %s", i, again, first)
		}
	}
	if rep := r.call(f, r.keyA, "POST", "/v1/tickets", api.TicketCreateRequest{Subject: "other", Message: "body"}, hdr); rep.Status != 422 {
		t.Errorf("the key with another body: %s; want 422", rep)
	}
	// Sent to the three coordinators at once: one ticket; each answer is
	// the first answer or a 409 (the key in flight).
	body = api.TicketCreateRequest{Subject: "racing", Message: "three at once"}
	hdr = map[string]string{"Idempotency-Key": "tk-race"}
	var wg sync.WaitGroup
	answers := make([]string, r.c.Len())
	statuses := make([]int, r.c.Len())
	for i := range r.c.Len() {
		wg.Go(func() {
			rep := r.apis[i].Call(r.keyA, "POST", "/v1/tickets", body, hdr)
			statuses[i], answers[i] = rep.Status, string(rep.Body)
		})
	}
	wg.Wait()
	var created string
	for i, st := range statuses {
		switch {
		case st == 201 && created == "":
			created = answers[i]
		case st == 201 && answers[i] != created:
			t.Errorf("two different 201s for one key: %s / %s", created, answers[i])
		case st != 201 && st != 409:
			t.Errorf("coordinator %d: %d %s; want 201 or 409", i, st, answers[i])
		}
	}
	var list struct {
		Data  []api.Ticket `json:"data"`
		Total int          `json:"total"`
	}
	r.call(0, r.keyA, "GET", "/v1/tickets?limit=100", nil, nil).Decode(t, &list)
	n := map[string]int{}
	for _, tk := range list.Data {
		n[tk.Subject]++
	}
	if n["once"] != 1 || n["racing"] != 1 || n["other"] != 0 {
		t.Errorf("tickets by subject %v; want one 'once', one 'racing', no 'other'", n)
	}

	// B on A's ticket: 404s, A's thread unchanged.
	for i := range r.c.Len() {
		for _, p := range []struct {
			path string
			body any
		}{{"/v1/tickets/" + a1.ID + "/reply", map[string]string{"body": "from B"}}, {"/v1/tickets/" + a1.ID + "/close", nil}} {
			if rep := r.call(i, r.keyB, "POST", p.path, p.body, nil); rep.Status != 404 {
				t.Errorf("coordinator %d: B POST %s: %s; want 404", i, p.path, rep)
			}
		}
	}
	var th api.Ticket
	r.call(0, r.keyA, "GET", "/v1/tickets/"+a1.ID, nil, nil).Decode(t, &th)
	if th.Status != api.TicketOpen || len(th.Messages) != 1 || strings.Contains(string(r.call(0, r.keyA, "GET", "/v1/tickets/"+a1.ID, nil, nil).Body), "from B") {
		t.Errorf("A's ticket after B's attempts: %+v", th)
	}
}
