package audit

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// TestProbe11OrderKeyAcrossCoordinators: a server order's Idempotency-Key sent
// at the same moment to different coordinators, as a client retrying through
// another coordinator does. The same body to all three: one server, one
// invoice, one debit; every send is the order (the first answer or its replay:
// the same server and invoice, the root password only in the first) or a 409
// while the key is in flight, which sent again becomes the replay. Two bodies
// under one key to the two followers: one order, one debit; the other is a
// 409 or a 422, and afterwards that body is a 422 on every coordinator while
// the winner's replays.
func TestProbe11OrderKeyAcrossCoordinators(t *testing.T) {
	r := sharedRig(t, "audit")
	r.c.Credit(r.ctx, r.accA.ID, 10*serverPrice)
	before := r.charged(r.keyA)
	n := r.c.Len()

	// send posts body with key at coordinator i until the answer is not a
	// 409 in flight (a client waits for the first send to finish).
	send := func(i int, body map[string]any, key string) framework.Reply {
		hdr := map[string]string{"Idempotency-Key": key}
		var rep framework.Reply
		_ = framework.ResendInFlight(30*time.Second, func(bool) error {
			rep = r.call(i, r.keyA, "POST", "/v1/servers", body, hdr)
			return rep.Err()
		})
		return rep
	}
	atOnce := func(at []int, bodies []map[string]any, key string) []framework.Reply {
		reps := make([]framework.Reply, len(at))
		var wg sync.WaitGroup
		for s := range at {
			wg.Go(func() {
				reps[s] = r.apis[at[s]].Call(r.keyA, "POST", "/v1/servers", bodies[s], map[string]string{"Idempotency-Key": key})
			})
		}
		wg.Wait()
		return reps
	}
	ordered := func(rep framework.Reply) api.ServerOrder {
		var o api.ServerOrder
		rep.Decode(t, &o)
		return o
	}

	// One body, three coordinators.
	body := serverBody("probe11-same")
	reps := atOnce([]int{0, 1, 2}, []map[string]any{body, body, body}, "probe11-same")
	var first api.ServerOrder
	for s, rep := range reps {
		if rep.Status == 409 && rep.Code() == "idempotency_key_in_flight" {
			rep = send(s, body, "probe11-same")
		}
		if rep.Status != 201 {
			t.Fatalf("one key and body at coordinator %d: %s; want the order", s, rep)
		}
		o := ordered(rep)
		if first.Server.ID == "" {
			first = o
		}
		if o.Server.ID != first.Server.ID || o.Invoice.ID != first.Invoice.ID {
			t.Errorf("one key and body at coordinator %d: server %s invoice %s; another send got server %s invoice %s", s, o.Server.ID, o.Invoice.ID, first.Server.ID, first.Invoice.ID)
		}
	}
	framework.WaitActionSuccess(t, r.apis[0].Client(r.keyA), first.Action.ID, 2*time.Minute)
	after := r.charged(r.keyA)
	if after.balance != before.balance-serverPrice || after.servers != before.servers+1 || after.invoices != before.invoices+1 {
		t.Errorf("one key and body sent to three coordinators at once: %+v → %+v; want one server, one invoice, one debit of %d", before, after, serverPrice)
	}

	// Two bodies, the two followers.
	ld, err := r.c.LeaderIndex(20 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	before = after
	bodies := []map[string]any{serverBody("probe11-x"), serverBody("probe11-y")}
	at := []int{(ld + 1) % n, (ld + 2) % n}
	reps = atOnce(at, bodies, "probe11-two")
	win := -1
	for s, rep := range reps {
		switch {
		case rep.Status == 201 && win == -1:
			win = s
		case rep.Status == 201:
			t.Errorf("two bodies under one key both ordered: %s / %s", reps[0], reps[1])
		case rep.Status == 409 && rep.Code() == "idempotency_key_in_flight", rep.Status == 422 && rep.Code() == "idempotency_key_reused":
		default:
			t.Errorf("body %d at coordinator %d: %s; want 201, 409 idempotency_key_in_flight or 422 idempotency_key_reused", s, at[s], rep)
		}
	}
	if win == -1 {
		// Both met the other in flight: the first to send again wins.
		if rep := send(at[0], bodies[0], "probe11-two"); rep.Status == 201 {
			win, reps[0] = 0, rep
		} else {
			t.Fatalf("neither of two bodies under one key ordered, and the first sent again: %s", rep)
		}
	}
	o := ordered(reps[win])
	framework.WaitActionSuccess(t, r.apis[0].Client(r.keyA), o.Action.ID, 2*time.Minute)
	for i := range n {
		if rep := send(i, bodies[win], "probe11-two"); rep.Status != 201 || ordered(rep).Server.ID != o.Server.ID || rep.Header.Get("Idempotent-Replayed") != "true" {
			t.Errorf("the winning body again at coordinator %d: %s; want the replay of server %s", i, rep, o.Server.ID)
		}
		if rep := send(i, bodies[1-win], "probe11-two"); rep.Status != 422 || rep.Code() != "idempotency_key_reused" {
			t.Errorf("the other body at coordinator %d: %s; want 422 idempotency_key_reused", i, rep)
		}
	}
	after = r.charged(r.keyA)
	if after.balance != before.balance-serverPrice || after.servers != before.servers+1 || after.invoices != before.invoices+1 {
		t.Errorf("two bodies under one key at two coordinators: %+v → %+v; want one server, one invoice, one debit of %d", before, after, serverPrice)
	}
	t.Logf("%s", fmt.Sprintf("two bodies at coordinators %v: %d / %d", at, reps[0].Status, reps[1].Status))
}
