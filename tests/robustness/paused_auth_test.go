package robustness

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
)

// TestPausedLeaderRevokedKeyAndAdminRead: while the leader is paused, the new
// leader revokes an API key and mints another. Reads sent to the paused
// ex-leader with the revoked key, and an operator's key listing sent to its
// admin socket, are answered after it resumes: the revoked key must be refused
// (401) or the read refused as a whole (503), never served; the listing must
// show the revocation and the new key, or fail (503); never the old state.
func TestPausedLeaderRevokedKeyAndAdminRead(t *testing.T) {
	c := newCluster(t, "revoke")
	ctx := context.Background()
	old := c.leader(nil, 10*time.Second)
	op := c.procs[old]
	doomed, err := op.Admin().CreateKey(ctx, c.account, api.KeyCreateRequest{Name: "doomed"})
	if err != nil {
		t.Fatal(err)
	}
	// The ex-leader knows the key and serves it (linearizably) before the pause.
	if _, st, err := c.readWith(ctx, op, doomed.Key, ""); err != nil || st != 200 {
		t.Fatalf("read with the new key before the pause: %d %v", st, err)
	}
	resume := pause(op)
	defer resume()
	nl := c.leader(map[int]bool{old: true}, 15*time.Second)
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := c.procs[nl].Admin().RevokeKey(actx, doomed.Info.ID); err != nil {
		t.Fatalf("revoke through the new leader: %v", err)
	}
	minted, err := c.procs[nl].Admin().CreateKey(actx, c.account, api.KeyCreateRequest{Name: "minted"})
	if err != nil {
		t.Fatalf("create key through the new leader: %v", err)
	}

	// Sent to the paused ex-leader now, answered when it resumes.
	const n = 16
	type result struct {
		st   int
		err  error
		keys []api.KeyInfo
	}
	reads, lists := make(chan result, n), make(chan result, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			defer cancel()
			_, st, err := c.readWith(rctx, op, doomed.Key, "")
			reads <- result{st: st, err: err}
		}()
		go func() {
			defer wg.Done()
			rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			defer cancel()
			keys, err := op.Admin().Keys(rctx, c.account)
			lists <- result{keys: keys, err: err}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	resume()
	wg.Wait()
	close(reads)
	close(lists)
	var refused401, refused503 int
	for r := range reads {
		switch {
		case r.err != nil:
			t.Errorf("read with the revoked key: %v", r.err)
		case r.st == 401:
			refused401++
		case r.st == 503:
			refused503++
		default:
			t.Errorf("read with a key revoked before it was sent: status %d (served by the resumed ex-leader)", r.st)
		}
	}
	var fresh, failed int
	for r := range lists {
		if r.err != nil {
			failed++ // a 503 to retry
			if failed == 1 {
				t.Logf("a failed listing: %v", r.err)
			}
			continue
		}
		var sawRevoked, sawMinted bool
		for _, k := range r.keys {
			if k.ID == doomed.Info.ID && k.RevokedAt != nil {
				sawRevoked = true
			}
			if k.ID == minted.Info.ID {
				sawMinted = true
			}
		}
		if !sawRevoked || !sawMinted {
			t.Errorf("admin key listing through the resumed ex-leader shows the old state (revocation seen %v, new key seen %v)", sawRevoked, sawMinted)
			continue
		}
		fresh++
	}
	t.Logf("revoked key through the resumed ex-leader: %d refused 401, %d refused 503; admin listings: %d current, %d failed (503)",
		refused401, refused503, fresh, failed)
}
