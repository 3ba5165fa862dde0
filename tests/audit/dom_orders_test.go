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

// ordersAtOnce sends n orders of body (POST /v1/domains as A, with hdr) at
// once, order i through coordinator i%3, and returns their answers by i.
func (d *domRig) ordersAtOnce(n int, body any, hdr map[string]string) []framework.Reply {
	reps := make([]framework.Reply, n)
	var wg sync.WaitGroup
	for i := range reps {
		wg.Go(func() {
			reps[i] = d.apis[i%3].Call(d.keyA, "POST", "/v1/domains", body, hdr)
		})
	}
	wg.Wait()
	return reps
}

// TestDomainOrdersChargeOnce: a customer buying a domain, as a careless
// client does it (retries, duplicates, races), is charged once per domain
// the registry registered, and nothing for what it did not: six concurrent
// sends of one Idempotency-Key to the three coordinators make one domain and
// one payment; four concurrent orders of one name without a key, and A and B
// racing for one name, register it once and leave the losers' wallets as
// they were; a registration the registry refuses is refunded and frees the
// name; a 503 while the registry is down charges nothing and the same key
// sent again once it is back orders (a 503 is not an answer to replay); a
// registration whose leader is killed while the registry is slow ends
// active, applied once, paid once, told once; domain.registered carries the
// seed's fields with the years bought and the expiry the registry holds.
func TestDomainOrdersChargeOnce(t *testing.T) {
	d := newDomRig(t)
	const funds = 30 * domainPrice
	d.c.Credit(d.ctx, d.accA.ID, funds)
	spent := int64(0) // what A's registrations should have cost so far

	t.Run("one key sent six times at once", func(t *testing.T) {
		hdr := map[string]string{"Idempotency-Key": "dup-key-1"}
		reps := d.ordersAtOnce(6, domainBody("race-key.test"), hdr)
		ids := map[string]bool{}
		for _, rep := range reps {
			switch rep.Status {
			case http.StatusCreated, http.StatusAccepted:
				var x api.Domain
				rep.Decode(t, &x)
				ids[x.ID] = true
			case http.StatusConflict: // the key in flight
			default:
				t.Errorf("a duplicate send: %s", rep)
			}
		}
		if len(ids) != 1 {
			t.Errorf("six sends of one key answered %d different domains: %v", len(ids), ids)
		}
		d.settled(d.keyA)
		spent += domainPrice
		if got := d.named(d.keyA, "race-key.test"); len(got) != 1 || got[0].Status != api.DomainActive {
			t.Errorf("race-key.test after six sends of one key: %+v", got)
		}
		if n := d.reg.Applied("domain:create", "race-key.test"); n != 1 {
			t.Errorf("the registry applied %d creates of race-key.test", n)
		}
		if b := d.balance(d.keyA); b != funds-spent {
			t.Errorf("balance %d after one registration of %d from %d", b, domainPrice, funds)
		}
	})

	t.Run("one name ordered four times at once", func(t *testing.T) {
		reps := d.ordersAtOnce(4, domainBody("race-name.test"), nil)
		won := 0
		for _, rep := range reps {
			if rep.Status == http.StatusCreated || rep.Status == http.StatusAccepted {
				won++
			} else if rep.Status != http.StatusConflict {
				t.Errorf("a concurrent order of one name: %s", rep)
			}
		}
		if won != 1 {
			t.Errorf("%d of 4 concurrent orders of race-name.test accepted", won)
		}
		d.settled(d.keyA)
		spent += domainPrice
		active := 0
		for _, x := range d.named(d.keyA, "race-name.test") {
			if x.Status == api.DomainActive {
				active++
			}
		}
		if active != 1 || d.reg.Applied("domain:create", "race-name.test") != 1 {
			t.Errorf("race-name.test: %d active, %d creates applied at the registry", active, d.reg.Applied("domain:create", "race-name.test"))
		}
		if b := d.balance(d.keyA); b != funds-spent {
			t.Errorf("balance %d after four concurrent orders of one name, want %d", b, funds-spent)
		}
	})

	t.Run("two accounts race for one name", func(t *testing.T) {
		d.c.Credit(d.ctx, d.accB.ID, domainPrice)
		var ra, rb framework.Reply
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			ra = d.apis[0].Call(d.keyA, "POST", "/v1/domains", domainBody("contested.test"), nil)
		}()
		go func() {
			defer wg.Done()
			rb = d.apis[1].Call(d.keyB, "POST", "/v1/domains", domainBody("contested.test"), nil)
		}()
		wg.Wait()
		ok := func(r framework.Reply) bool { return r.Status == http.StatusCreated || r.Status == http.StatusAccepted }
		if ok(ra) == ok(rb) {
			t.Fatalf("A and B racing for one name: %s / %s, want one accepted", ra, rb)
		}
		d.settled(d.keyA)
		d.settled(d.keyB)
		aHas, bHas := len(d.named(d.keyA, "contested.test")) > 0 && d.named(d.keyA, "contested.test")[0].Status == api.DomainActive,
			len(d.named(d.keyB, "contested.test")) > 0 && d.named(d.keyB, "contested.test")[0].Status == api.DomainActive
		if aHas == bHas {
			t.Errorf("contested.test active for A %v and for B %v", aHas, bHas)
		}
		if aHas {
			spent += domainPrice
		}
		if b := d.balance(d.keyB); (bHas && b != 0) || (!bHas && b != domainPrice) {
			t.Errorf("B's balance %d (B has the name: %v)", b, bHas)
		}
		if b := d.balance(d.keyA); b != funds-spent {
			t.Errorf("A's balance %d, want %d", b, funds-spent)
		}
	})

	t.Run("a create the registry refuses is refunded and frees the name", func(t *testing.T) {
		hdr := map[string]string{"Idempotency-Key": "refused-1"}
		d.reg.FailNextOn("domain:create", 1, 2306) // parameter value policy error: refused, not applied
		rep := d.call(1, d.keyA, "POST", "/v1/domains", domainBody("refused.test"), hdr)
		if rep.Status != http.StatusConflict || rep.Code() != "registration_failed" {
			t.Errorf("an order the registry refuses: %s, want 409 registration_failed", rep)
		}
		if again := d.call(2, d.keyA, "POST", "/v1/domains", domainBody("refused.test"), hdr); again.Status != rep.Status {
			t.Errorf("the same key sent again: %s, want the first answer %d", again, rep.Status)
		}
		d.settled(d.keyA)
		if b := d.balance(d.keyA); b != funds-spent {
			t.Errorf("balance %d after a refused registration, want %d", b, funds-spent)
		}
		for _, x := range d.named(d.keyA, "refused.test") {
			if x.Status != api.DomainFailed {
				t.Errorf("refused.test: %+v", x)
			}
		}
		x := d.active(0, "refused.test")
		spent += domainPrice
		if x.Status != api.DomainActive || d.balance(d.keyA) != funds-spent {
			t.Errorf("refused.test ordered again: %+v, balance %d want %d", x, d.balance(d.keyA), funds-spent)
		}
	})

	t.Run("a 503 is not replayed to the same key", func(t *testing.T) {
		hdr := map[string]string{"Idempotency-Key": "down-1"}
		d.reg.Down()
		rep := d.call(0, d.keyA, "POST", "/v1/domains", domainBody("while-down.test"), hdr)
		d.reg.Up()
		if rep.Status != http.StatusServiceUnavailable || rep.Code() != "registry_unavailable" {
			t.Errorf("an order with the registry down: %s, want 503 registry_unavailable", rep)
		}
		if b := d.balance(d.keyA); b != funds-spent {
			t.Errorf("balance %d after a 503, want %d", b, funds-spent)
		}
		var again framework.Reply
		framework.WaitFor(t, "the registry reachable again", 30*time.Second, 500*time.Millisecond, func() bool {
			again = d.call(1, d.keyA, "POST", "/v1/domains", domainBody("while-down.test"), hdr)
			return again.Status != http.StatusServiceUnavailable || again.Header.Get("Idempotent-Replayed") == "true"
		})
		if again.Status != http.StatusCreated && again.Status != http.StatusAccepted {
			t.Errorf("the same key sent again with the registry back: %s (replayed %q), want the order", again, again.Header.Get("Idempotent-Replayed"))
		} else {
			spent += domainPrice
		}
		d.settled(d.keyA)
		if b := d.balance(d.keyA); b != funds-spent {
			t.Errorf("balance %d, want %d", b, funds-spent)
		}
	})

	t.Run("domain.registered as the seed says", func(t *testing.T) {
		b := domainBody("three-years.test")
		b["years"] = 3
		rep := d.write(0, d.keyA, "POST", "/v1/domains", b)
		if rep.Status != http.StatusCreated && rep.Status != http.StatusAccepted {
			t.Fatalf("%s", rep)
		}
		spent += 3 * domainPrice
		var x api.Domain
		rep.Decode(t, &x)
		ev := d.hooks.Wait(t, "domain.registered", 30*time.Second, func(m map[string]any) bool { return m["domainId"] == x.ID })
		x = d.domain(d.keyA, x.ID)
		regd := d.reg.Domain("three-years.test")
		if regd == nil || x.ExpiresAt == nil {
			t.Fatalf("three-years.test: %+v, registry %+v", x, regd)
		}
		exp, err := time.Parse(time.RFC3339, fmt.Sprint(ev.Data["expiresAt"]))
		if ev.Data["domain"] != "three-years.test" || ev.Data["periodYears"] != 3.0 || err != nil || !exp.Equal(x.ExpiresAt.Truncate(time.Second)) && !exp.Equal(*x.ExpiresAt) {
			t.Errorf("domain.registered %s, the domain %+v", ev.Body, x)
		}
		if !regd.ExDate.Truncate(time.Second).Equal(x.ExpiresAt.Truncate(time.Second)) || x.PeriodYears != 3 {
			t.Errorf("expiry: the registry %s, the API %s (period %d)", regd.ExDate, x.ExpiresAt, x.PeriodYears)
		}
		if got := x.ExpiresAt.Sub(x.CreatedAt); got < 3*365*24*time.Hour || got > 3*366*24*time.Hour+time.Hour {
			t.Errorf("three years from %s end %s", x.CreatedAt, x.ExpiresAt)
		}
		if b := d.balance(d.keyA); b != funds-spent {
			t.Errorf("balance %d after three years, want %d", b, funds-spent)
		}
	})

	t.Run("leader killed while the registry is slow", func(t *testing.T) {
		hdr := map[string]string{"Idempotency-Key": "kill-1"}
		ld := d.c.WaitLeader(20 * time.Second)
		f := (ld + 1) % 3
		d.reg.DelayNextOn("domain:create", 1, 4*time.Second)
		done := make(chan framework.Reply, 1)
		go func() {
			r, _ := d.apis[f].Try(d.keyA, "POST", "/v1/domains", domainBody("killed.test"), hdr)
			done <- r
		}()
		time.Sleep(1500 * time.Millisecond)
		d.c.Kill(ld)
		<-done
		// The client retries its key until it has an answer.
		other := (ld + 2) % 3
		framework.WaitFor(t, "an answer to the retried key", 45*time.Second, 500*time.Millisecond, func() bool {
			r, err := d.apis[other].Try(d.keyA, "POST", "/v1/domains", domainBody("killed.test"), hdr)
			return err == nil && (r.Status == http.StatusCreated || r.Status == http.StatusAccepted)
		})
		spent += domainPrice
		d.settled(d.keyA)
		got := d.named(d.keyA, "killed.test")
		if len(got) != 1 || got[0].Status != api.DomainActive {
			t.Fatalf("killed.test: %+v", got)
		}
		if n := d.reg.Applied("domain:create", "killed.test"); n != 1 {
			t.Errorf("the registry applied %d creates of killed.test", n)
		}
		if b := d.balance(d.keyA); b != funds-spent {
			t.Errorf("balance %d, want %d", b, funds-spent)
		}
		framework.WaitFor(t, "killed.test's domain.registered", 30*time.Second, 200*time.Millisecond, func() bool {
			return len(d.hooks.Deliveries("domain.registered")) > 0
		})
		time.Sleep(2 * time.Second)
		// One event per domain (a delivery repeated after the kill keeps
		// its event id).
		seen := map[string]map[string]bool{}
		for _, ev := range d.hooks.Deliveries("domain.registered") {
			id := fmt.Sprint(ev.Data["domainId"])
			if seen[id] == nil {
				seen[id] = map[string]bool{}
			}
			seen[id][ev.ID] = true
		}
		for id, evs := range seen {
			if len(evs) != 1 {
				t.Errorf("domain.registered for %s: %d events", id, len(evs))
			}
		}
		if len(seen[got[0].ID]) != 1 {
			t.Errorf("killed.test (%s): %d domain.registered events", got[0].ID, len(seen[got[0].ID]))
		}
	})
}
