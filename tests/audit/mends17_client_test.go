package audit

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
)

// TestMends17ClientRidesOutALeaderChange: pkg/client called at a follower
// while the leader hangs (SIGSTOP: its connections stay open, so the
// follower answers 503 leader_unreachable once another coordinator leads)
// sends a read and a ticket with an Idempotency-Key again until the new
// leader answers them, within the client's LeaderWait; a ticket without a
// key is not sent again (it is answered, or is that 503). The keyed ticket
// is created once.
func TestMends17ClientRidesOutALeaderChange(t *testing.T) {
	r := lightRig(t, "mends17cl")
	ld, f := r.leaderAndFollower()
	c := r.c.Client(f, r.keyA)
	ctx, cancel := context.WithTimeout(r.ctx, 40*time.Second)
	defer cancel()
	ldp := r.c.Nodes[ld]
	ldp.Pause()
	resumed := sync.OnceFunc(ldp.Resume)
	defer resumed()
	var wg sync.WaitGroup
	var acc api.AccountProfile
	var errGet, errKeyed, errPlain error
	var took [3]time.Duration
	timed := func(i int, fn func()) {
		wg.Go(func() {
			start := time.Now()
			fn()
			took[i] = time.Since(start)
		})
	}
	timed(0, func() { acc, errGet = c.Account(ctx) })
	timed(1, func() {
		_, errKeyed = c.CreateTicket(ctx, api.TicketCreateRequest{Subject: "keyed", Message: "sent again while the leader moves"}, "mends17-keyed")
	})
	timed(2, func() {
		_, errPlain = c.CreateTicket(ctx, api.TicketCreateRequest{Subject: "plain", Message: "sent once"}, "")
	})
	wg.Wait()
	resumed()
	t.Logf("with the leader paused: GET %v after %v; keyed POST %v after %v; POST without a key %v after %v",
		errGet, took[0].Round(time.Millisecond), errKeyed, took[1].Round(time.Millisecond), errPlain, took[2].Round(time.Millisecond))
	if errGet != nil || acc.ID != r.accA.ID {
		t.Errorf("GET /v1/account at a follower with the leader paused: %v; want the account once a new leader answers", errGet)
	}
	if errKeyed != nil {
		t.Errorf("a keyed POST /v1/tickets at a follower with the leader paused: %v; want it answered once a new leader answers", errKeyed)
	}
	var ae *api.Error
	if errPlain != nil && (!errors.As(errPlain, &ae) || ae.StatusCode != 503 || ae.Code != "leader_unreachable") {
		t.Errorf("a POST /v1/tickets without a key: %v; want it answered, or its 503 leader_unreachable", errPlain)
	}
	for i, d := range took {
		if d > 20*time.Second {
			t.Errorf("request %d answered after %v; want within the client's LeaderWait (15 s) and the follower's cut", i, d)
		}
	}
	keyed := ticketsWithSubject(ctx, t, c, "keyed")
	if errKeyed == nil && keyed != 1 {
		t.Errorf("%d tickets made by the keyed POST sent again; want 1", keyed)
	}
}
