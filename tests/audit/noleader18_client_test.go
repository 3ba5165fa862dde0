package audit

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/client"
	"github.com/hostplane/hostplane/tests/framework"
)

// TestNoleader18ClientRidesOutAnElection: pkg/client called at a follower
// that knows no leader (the leader and the other follower paused: it stands
// for election alone and answers 503 no_leader with Retry-After) sends a
// read and a ticket with an Idempotency-Key again, as Retry-After asks,
// until the election it waits for ends (the other follower resumed: the two
// elect a leader) and the new leader answers them, within the client's
// LeaderWait; a ticket without a key is not sent again (its 503 no_leader
// is returned at once). The keyed ticket is created once. The rig's setup
// write (rig.write: its own Idempotency-Key, sent again after a 503 with
// Retry-After) rides the election out the same way, where the unkeyed
// rig.call that tests used for setup gets the 503.
func TestNoleader18ClientRidesOutAnElection(t *testing.T) {
	r := lightRig(t, "nl18cl")
	ld, f := r.leaderAndFollower()
	other := 3 - ld - f
	ctx, cancel := context.WithTimeout(r.ctx, 60*time.Second)
	defer cancel()
	r.c.Nodes[ld].Pause()
	r.c.Nodes[other].Pause()
	resumeOther := sync.OnceFunc(r.c.Nodes[other].Resume)
	defer r.c.Nodes[ld].Resume()
	defer resumeOther()

	// Until f's heartbeat timeout it would forward to the paused leader.
	adm := r.c.Nodes[f].Admin()
	framework.WaitFor(t, "the follower left alone to know no leader", 20*time.Second, 100*time.Millisecond, func() bool {
		st, err := adm.ClusterStatus(ctx)
		return err == nil && st.LeaderID == ""
	})
	raw := r.c.Client(f, r.keyA)
	raw.LeaderWait = -1
	var ae *api.Error
	if _, err := raw.Account(ctx); !errors.As(err, &ae) || ae.StatusCode != 503 || ae.Code != "no_leader" {
		t.Fatalf("GET /v1/account at the follower with no leader, sent once: %v; want 503 no_leader (what this test is about)", err)
	}

	c := r.c.Client(f, r.keyA)
	type result struct {
		err  error
		took time.Duration
	}
	results := make([]result, 5)
	var acc api.AccountProfile
	var wg sync.WaitGroup
	for i, fn := range []func() error{
		func() (err error) { acc, err = c.Account(ctx); return err },
		func() error {
			_, err := c.CreateTicket(ctx, api.TicketCreateRequest{Subject: "keyed", Message: "sent again while the cluster elects"}, "nl18-keyed")
			return err
		},
		func() error {
			_, err := c.CreateTicket(ctx, api.TicketCreateRequest{Subject: "plain", Message: "sent once"}, "")
			return err
		},
		func() error {
			return status(r.write(f, r.keyB, "POST", "/v1/tickets", api.TicketCreateRequest{Subject: "setup", Message: "the rig's write"}), 201)
		},
		func() error {
			return status(r.apis[f].Call(r.keyB, "POST", "/v1/tickets", api.TicketCreateRequest{Subject: "setup-unkeyed", Message: "m"}, nil), 201)
		},
	} {
		wg.Go(func() {
			start := time.Now()
			err := fn()
			results[i] = result{err, time.Since(start)}
		})
	}
	time.Sleep(3 * time.Second) // f answers no_leader meanwhile
	resumeOther()
	wg.Wait()
	t.Logf("with no leader for 3 s: GET %v after %v; keyed POST %v after %v; POST without a key %v after %v",
		results[0].err, results[0].took.Round(time.Millisecond), results[1].err, results[1].took.Round(time.Millisecond),
		results[2].err, results[2].took.Round(time.Millisecond))
	if results[0].err != nil || acc.ID != r.accA.ID {
		t.Errorf("GET /v1/account at the follower while the cluster elects: %v; want the account once a leader answers", results[0].err)
	}
	if results[1].err != nil {
		t.Errorf("a keyed POST /v1/tickets at the follower while the cluster elects: %v; want it answered once a leader answers", results[1].err)
	}
	if err := results[2].err; !errors.As(err, &ae) || ae.StatusCode != 503 || ae.Code != "no_leader" || results[2].took > 2*time.Second {
		t.Errorf("a POST /v1/tickets without a key while no leader is known: %v after %v; want its 503 no_leader at once, not sent again", err, results[2].took)
	}
	t.Logf("the rig's setup write %v after %v; the unkeyed call %v after %v",
		results[3].err, results[3].took.Round(time.Millisecond), results[4].err, results[4].took.Round(time.Millisecond))
	if results[3].err != nil {
		t.Errorf("rig.write of a ticket at the follower while the cluster elects: %v; want it made once a leader answers", results[3].err)
	}
	if err := results[4].err; err == nil || !strings.Contains(err.Error(), "503") || !strings.Contains(err.Error(), "no_leader") {
		t.Errorf("an unkeyed POST /v1/tickets sent once while no leader is known: %v; want its 503 no_leader", err)
	}
	for _, i := range []int{0, 1, 3} {
		if took := results[i].took; took < 2500*time.Millisecond || took > 15*time.Second {
			t.Errorf("request %d answered after %v; want after the 3 s without a leader, within the client's LeaderWait (15 s)", i, took)
		}
	}
	keyed := ticketsWithSubject(ctx, t, c, "keyed")
	if keyed != 1 {
		t.Errorf("%d tickets made by the keyed POST sent again; want 1", keyed)
	}
}

// status is nil when rep has status want, else an error showing rep.
func status(rep framework.Reply, want int) error {
	if rep.Status != want {
		return fmt.Errorf("%s", rep)
	}
	return nil
}

// ticketsWithSubject is how many of the caller's tickets (the first 100)
// have subject: a keyed create sent again must have made one.
func ticketsWithSubject(ctx context.Context, t *testing.T, c *client.Client, subject string) int {
	t.Helper()
	page, err := c.Tickets(ctx, 1, 100)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, tk := range page.Data {
		if tk.Subject == subject {
			n++
		}
	}
	return n
}
