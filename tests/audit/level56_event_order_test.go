package audit

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
)

// TestWebhookEventIDsSortInCommitOrder: a customer who sorts the events its
// receiver got by id (or keeps "the last id seen") reads them in the order
// they happened. Tickets are opened by 36 clients at once through all three
// coordinators (the leader and the two followers, which forward), once the
// cluster runs the level its coordinators apply; a ticket's number is
// given in commit order (the account's counter, at apply), so the
// ticket.created events sorted by id must carry increasing ticket numbers.
// Before level 12 an event id began with the time the handler stamped when
// its request started, so two racing requests that committed in one order
// took ids in the other.
func TestWebhookEventIDsSortInCommitOrder(t *testing.T) {
	// Mostly waits (see "Parallel tests" in audit_test.go).
	t.Parallel()
	r := hookRig(t)
	waitTopLevel(t, r)
	s := newSink(t, nil)
	r.hook(r.keyA, s.URL, "ticket.created")

	const clients, each = 36, 10
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for g := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range each {
				key := fmt.Sprintf("order-%d-%d", g, k)
				deadline := time.Now().Add(60 * time.Second)
				for try := 0; ; try++ {
					c := (g + try) % r.c.Len()
					rep, err := r.apis[c].Try(r.keyA, "POST", "/v1/tickets", api.TicketCreateRequest{Subject: key, Message: "m"}, map[string]string{"Idempotency-Key": key})
					if err == nil && rep.Status == 201 {
						break
					}
					if time.Now().After(deadline) {
						errs <- fmt.Errorf("ticket %s not created within 60 s: %v %s", key, err, rep)
						return
					}
					time.Sleep(100 * time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	evs := sortedEvents[struct {
		TicketNumber int64 `json:"ticketNumber"`
	}](t, s, clients*each, 90*time.Second, "ticket.created")
	var bad []string
	for i := 1; i < len(evs); i++ {
		if evs[i].Data.TicketNumber <= evs[i-1].Data.TicketNumber {
			bad = append(bad, fmt.Sprintf("%s (ticket %d) sorts after %s (ticket %d)", evs[i].ID, evs[i].Data.TicketNumber, evs[i-1].ID, evs[i-1].Data.TicketNumber))
		}
	}
	if len(bad) > 0 {
		t.Fatalf("%d of %d ticket.created events sorted by id come after an event of a later ticket (ticket numbers are given in commit order); the first: %s",
			len(bad), len(evs), strings.Join(bad[:min(len(bad), 5)], "; "))
	}
}

// waitTopLevel waits (up to 30 s) until every coordinator of r's cluster
// runs the semantics level its leader applies at most: the level the new
// behaviours need.
func waitTopLevel(t *testing.T, r *rig) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := r.c.Leader().Admin().ClusterStatus(r.ctx)
		ok := err == nil && st.MaxLevel > 0
		for i := range r.c.Len() {
			if !ok {
				break
			}
			s, err := r.c.Nodes[i].Admin().ClusterStatus(r.ctx)
			ok = err == nil && s.Level == st.MaxLevel
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cluster is not at its top level 30 s after it started: %+v %v", st, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
