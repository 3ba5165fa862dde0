package audit

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/tests/framework"
)

// TestProbe62OtherAccountsWritesThroughAFollowerAcrossALeaderKill: B's key
// (every scope) with A's ids on every write route under an id that A's
// light-rig state has (a ticket's reply and close, a webhook's PATCH,
// DELETE, rotate-secret and a delivery's redeliver, the revocation of A's
// key), sent over and over to a follower while the leader is killed and
// another elected (a follower forwards writes to the leader; an old leader's
// forwarded request must not be applied as anyone but B). Each answer is
// SPEC.md's 404 ("absent or another account's"), or a leadership 503 the
// client sends again, never a 2xx, and shows nothing of A's. Afterwards,
// the killed coordinator restarted, A's ticket, webhook, deliveries and
// keys as each of the three coordinators holds them (?consistency=stale:
// its own state) are what they were before, and A's key still works.
func TestProbe62OtherAccountsWritesThroughAFollowerAcrossALeaderKill(t *testing.T) {
	r := lightRig(t, "p62kill")
	recv := newReceiver(t)
	whA := r.hook(r.keyA, recv.URL+"/a-secret-hook", "ticket.created")
	tA := r.ticket(0, r.keyA, "p62 A's failover secret")
	kA := r.keyID(r.keyA)
	dA := p62Delivery(t, r, r.keyA, whA.ID)
	markers := []string{tA.Subject, "/a-secret-hook", r.accA.ID, r.accA.Email}
	paths := []string{"/v1/tickets/" + tA.ID, "/v1/webhooks/" + whA.ID, "/v1/webhooks/" + whA.ID + "/deliveries", "/v1/account/api-keys", "/v1/tickets"}
	before := p62Agreed(t, r, r.keyA, paths, "A's state on every coordinator before")
	type write struct{ method, path, body string }
	writes := []write{
		{"POST", "/v1/tickets/" + tA.ID + "/reply", `{"body":"p62 B's reply"}`},
		{"POST", "/v1/tickets/" + tA.ID + "/close", "{}"},
		{"PATCH", "/v1/webhooks/" + whA.ID, `{"description":"p62 B's","isActive":false}`},
		{"POST", "/v1/webhooks/" + whA.ID + "/rotate-secret", "{}"},
		{"POST", "/v1/webhooks/" + whA.ID + "/deliveries/" + dA + "/redeliver", "{}"},
		{"DELETE", "/v1/webhooks/" + whA.ID, ""},
		{"DELETE", "/v1/account/api-keys/" + kA, ""},
	}
	ld, f := r.leaderAndFollower()
	kill := p62KillSoon(r, ld)
	for kill.more() {
		for _, w := range writes {
			kill.refused(t, f, r.keyB, "p62", w.method, w.path, w.path, w.body, markers)
		}
	}
	t.Logf("%d writes of B with A's ids sent through coordinator %d across the kill of %d: %v", kill.sent, f, ld, kill.answers)
	kill.restartUnchanged(t, r.keyA, paths, before, "B's writes", 600)
	for i := range r.c.Len() {
		if rep := p62Do(t, r.ctx, r.c.URL(i), "GET", "/v1/tickets/"+tA.ID, p62Key(r.keyA), ""); rep.status != 200 {
			t.Errorf("coordinator %d: A's key after B's writes: %s", i, rep)
		}
	}
}

// p62Stale is paths read as ?consistency=stale: the answering coordinator's
// own state.
func p62Stale(paths []string) []string {
	out := make([]string, len(paths))
	for i, p := range paths {
		sep := "?"
		if strings.Contains(p, "?") {
			sep = "&"
		}
		out[i] = p + sep + "consistency=stale"
	}
	return out
}

// p62Agreed is what key's reads of paths answer (p62State, read as
// ?consistency=stale: each coordinator's own state, keyed by the stale
// paths) once the three coordinators answer alike (what names the wait).
func p62Agreed(t *testing.T, r *rig, key string, paths []string, what string) map[string]string {
	t.Helper()
	var st map[string]string
	framework.WaitFor(t, what, 30*time.Second, 250*time.Millisecond, func() bool {
		var each []string
		for i := range r.c.Len() {
			s := p62State(t, r, i, key, p62Stale(paths))
			if st == nil || i == 0 {
				st = s
			}
			each = append(each, fmt.Sprint(s))
		}
		return len(slices.Compact(each)) == 1
	})
	return st
}

// p62Killer kills coordinator ld (the leader) a second after p62KillSoon;
// a loop sending across the kill runs while more says so: until 8 s after
// it.
type p62Killer struct {
	r      *rig
	ld     int
	killed chan time.Time
	at     time.Time
	// sent and answers count send's requests, and them by status.
	sent    int
	answers map[int]int
}

func p62KillSoon(r *rig, ld int) *p62Killer {
	k := &p62Killer{r: r, ld: ld, killed: make(chan time.Time, 1), answers: map[int]int{}}
	go func() {
		time.Sleep(time.Second)
		r.c.Kill(ld)
		k.killed <- time.Now()
	}()
	return k
}

// more says whether the loop goes on: before the kill and for 8 s after it.
func (k *p62Killer) more() bool {
	select {
	case at := <-k.killed:
		k.at = at
	default:
	}
	return k.at.IsZero() || time.Since(k.at) < 8*time.Second
}

// done says whether the leader has been killed.
func (k *p62Killer) done() bool { return !k.at.IsZero() }

// restart waits for another leader, then restarts the killed coordinator
// and waits until it is ready.
func (k *p62Killer) restart(t *testing.T) {
	t.Helper()
	if _, err := k.r.c.LeaderIndexSkipping(map[int]bool{k.ld: true}, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	k.r.c.Restart(k.ld)
	k.r.c.WaitReady(k.ld, 30*time.Second)
}

// restartUnchanged restarts the killed coordinator (restart) and checks
// that key's reads of paths, once the three coordinators agree (p62Agreed),
// are what they were before (p62Agreed's, before the kill): A's state, not
// changed by what (each read's answer quoted up to quote bytes).
func (k *p62Killer) restartUnchanged(t *testing.T, key string, paths []string, before map[string]string, by string, quote int) {
	t.Helper()
	k.restart(t)
	after := p62Agreed(t, k.r, key, paths, "A's state on every coordinator after")
	for _, p := range p62Stale(paths) {
		if after[p] != before[p] {
			t.Errorf("A's %s changed by %s: %.*s → %.*s", p, by, quote, before[p], quote, after[p])
		}
	}
}

// send sends method target (body JSON, "" none) with key to coordinator f
// (p62Do), a write with an Idempotency-Key of its own (prefix and the
// count), and counts the answer.
func (k *p62Killer) send(t *testing.T, f int, key, prefix, method, target, body string) p58Reply {
	t.Helper()
	h := p62Key(key)
	if method != "GET" {
		h.Set("Idempotency-Key", fmt.Sprintf("%s-kill-%d", prefix, k.sent))
	}
	rep := p62Do(t, k.r.ctx, k.r.c.URL(f), method, target, h, body)
	k.sent++
	k.answers[rep.status]++
	return rep
}

// refused is send of another account's id (route names it): a leadership
// 503 is logged, any other answer must be p62Refused's 404.
func (k *p62Killer) refused(t *testing.T, f int, key, prefix, method, route, target, body string, markers []string) {
	t.Helper()
	rep := k.send(t, f, key, prefix, method, target, body)
	what := fmt.Sprintf("B's %s %s through follower %d (leader %d killed: %v)", method, route, f, k.ld, k.done())
	if rep.status == 503 {
		t.Logf("%s: %s", what, rep)
		return
	}
	p62Refused(t, what, rep, target, markers, 404)
}
