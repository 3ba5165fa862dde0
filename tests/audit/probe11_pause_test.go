package audit

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// TestProbe11WritesAtFollowersWhileTheLeaderIsPaused: the leader stops
// answering without closing its connections (SIGSTOP: as a host that hangs or
// drops off the network) while customers write through the two followers,
// each ticket sent with its own Idempotency-Key. The followers elect a new
// leader within about a second, so a customer at a follower gets an answer
// (the ticket, or a 503 with Retry-After: leadership changed, send it again)
// within a few seconds, not after the follower's 30 s wait for the paused
// leader (pkg/client gives up at 30 s itself: the customer then cannot tell a
// refusal from a lost answer). Sent again with the same key as Retry-After
// says, each key makes one ticket, and the key sent once more replays its
// answer byte for byte. Reads sent through the followers in the same moment
// are answered within the same bound.
func TestProbe11WritesAtFollowersWhileTheLeaderIsPaused(t *testing.T) {
	r := newLightRig(t)
	// Each follower's channel to the leader is open (a write forwarded).
	ld, followers := r.pausable()

	const bound = 8 * time.Second // an election (~1 s here) and slack for a loaded machine
	type sent struct {
		f       int
		key     string
		first   time.Duration // until the first answer
		status  int           // of the first answer
		final   framework.Reply
		failure string
	}
	var (
		mu  sync.Mutex
		all []*sent
		wg  sync.WaitGroup
	)
	ldp := r.c.Nodes[ld]
	ldp.Pause()
	resumed := sync.OnceFunc(ldp.Resume)
	defer resumed()
	// Writes sent in the first 400 ms after the pause: the followers still
	// take the paused coordinator for the leader for some of them.
	for n := range 8 {
		f := followers[n%2]
		s := &sent{f: f, key: fmt.Sprintf("paused-%d", n)}
		all = append(all, s)
		wg.Go(func() {
			time.Sleep(time.Duration(n) * 50 * time.Millisecond)
			body := api.TicketCreateRequest{Subject: s.key, Message: "sent while the leader is paused"}
			hdr := map[string]string{"Idempotency-Key": s.key}
			start := time.Now()
			rep, err := r.apis[f].Try(r.keyA, "POST", "/v1/tickets", body, hdr)
			mu.Lock()
			s.first = time.Since(start)
			if err != nil {
				s.failure = fmt.Sprintf("no answer after %s: %v", s.first.Round(time.Millisecond), err)
			} else {
				s.status = rep.Status
			}
			mu.Unlock()
			// As a client does: again with the same key while the answer is
			// a 503 with Retry-After or none came.
			for end := time.Now().Add(60 * time.Second); time.Now().Before(end); {
				if err == nil && !(rep.Status == 503 && rep.Header.Get("Retry-After") != "") {
					break
				}
				time.Sleep(time.Second)
				rep, err = r.apis[f].Try(r.keyA, "POST", "/v1/tickets", body, hdr)
			}
			mu.Lock()
			s.final = rep
			mu.Unlock()
		})
	}
	// Reads through the followers in the same window: answered within the
	// bound too (a read is forwarded to the leader as a proxied request).
	reads := make([]string, 4)
	for n := range reads {
		f := followers[n%2]
		wg.Go(func() {
			time.Sleep(time.Duration(n) * 100 * time.Millisecond)
			start := time.Now()
			rep, err := r.apis[f].Try(r.keyA, "GET", "/v1/tickets", nil, nil)
			took := time.Since(start)
			switch {
			case err != nil:
				reads[n] = fmt.Sprintf("GET /v1/tickets at coordinator %d (a follower) with the leader paused: no answer after %s: %v; want an answer within %s", f, took.Round(time.Millisecond), err, bound)
			case took > bound:
				reads[n] = fmt.Sprintf("GET /v1/tickets at coordinator %d (a follower) with the leader paused: %d after %s; want an answer within %s", f, rep.Status, took.Round(time.Millisecond), bound)
			default:
				t.Logf("GET /v1/tickets at coordinator %d with the leader paused: %d after %s", f, rep.Status, took.Round(time.Millisecond))
			}
		})
	}
	wg.Wait()
	resumed()
	for _, e := range reads {
		if e != "" {
			t.Error(e)
		}
	}

	tickets := map[string]int{}
	var list struct {
		Data []api.Ticket `json:"data"`
	}
	r.get(t, followers[0], r.keyA, "/v1/tickets?limit=200", &list)
	for _, tk := range list.Data {
		tickets[tk.Subject]++
	}
	for _, s := range all {
		t.Logf("%s at coordinator %d: first answer %d after %s, then %d", s.key, s.f, s.status, s.first.Round(time.Millisecond), s.final.Status)
		if s.failure != "" {
			t.Errorf("%s at coordinator %d (a follower) with the leader paused: %s; want an answer within %s", s.key, s.f, s.failure, bound)
		} else if s.first > bound {
			t.Errorf("%s at coordinator %d (a follower) with the leader paused: answered %d after %s; want an answer within %s", s.key, s.f, s.status, s.first.Round(time.Millisecond), bound)
		}
		if s.final.Status != 201 {
			t.Errorf("%s sent again with its key until answered: %s; want the ticket", s.key, s.final)
			continue
		}
		if n := tickets[s.key]; n != 1 {
			t.Errorf("%s: %d tickets of its subject; want 1", s.key, n)
		}
		// Once more, at each coordinator (the old leader included): the
		// first answer, byte for byte.
		for i := range r.c.Len() {
			again := r.call(i, r.keyA, "POST", "/v1/tickets", api.TicketCreateRequest{Subject: s.key, Message: "sent while the leader is paused"}, map[string]string{"Idempotency-Key": s.key})
			if again.Status != 201 || !bytes.Equal(again.Body, s.final.Body) || again.Header.Get("Idempotent-Replayed") != "true" {
				t.Errorf("%s sent again at coordinator %d: %s (replayed %q); want the first answer %s", s.key, i, again, again.Header.Get("Idempotent-Replayed"), s.final)
			}
		}
	}
}
