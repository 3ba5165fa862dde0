package audit

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// TestStaleReadsLeaseFromTheNewLeader: the leader stops answering (SIGSTOP)
// just as a customer's key makes its first `?consistency=stale` read at each
// follower, which asks the paused leader for a rate-limit lease (hanging
// until the ask times out, 2 s). Once the followers have elected a new
// leader, a stale read of another key at the coordinator still following is
// counted against the key's whole limit, leased from the new leader
// (X-RateLimit-Limit is the key's limit), not against a third of it on a
// window of the follower's own as if no leader could be reached: the old
// leader's failed lease no longer sends reads there. Every read is answered
// 200 within the ask's timeout and a margin.
//
// What tells the fix from the code before it is key2's X-RateLimit-Limit:
// before, the paused leader's failed ask sent every stale read at that
// follower to the local share for 5 s after it failed (about 7 s after the
// pause). The bound on key1's first read (3 s) is a liveness bound that
// held before too (2.0 s then: the ask's timeout; 1.4-1.5 s now, when the
// election ends first, which a loaded machine may not give). An election
// that takes more than about 6 s leaves the old code passing too; the test
// then still checks the new behaviour and says so in its log.
func TestStaleReadsLeaseFromTheNewLeader(t *testing.T) {
	const limit = 600
	c := framework.NewProcessCluster(t, framework.ProcessOptions{N: 3, Bin: framework.Coordinator(t), RaftTimeout: framework.RaftTimeout, RateLimit: limit})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, key1, err := c.NewAccount(ctx, "lease-a@example.com")
	if err != nil {
		t.Fatal(err)
	}
	_, key2, err := c.NewAccount(ctx, "lease-b@example.com")
	if err != nil {
		t.Fatal(err)
	}
	ld := c.WaitLeader(20 * time.Second)
	var followers []int
	for i := range c.Len() {
		if i != ld {
			followers = append(followers, i)
		}
	}
	// Both followers hold both keys before the pause (applied what the
	// leader committed), and neither has read with them yet: each key's first
	// stale read at a follower asks the leader for a lease.
	lst, err := c.Admin(ld).ClusterStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range followers {
		framework.PollFor(t, fmt.Sprintf("coordinator %d to apply index %d", f, lst.CommitIndex), 10*time.Second, 20*time.Millisecond, func(ctx context.Context) (api.ClusterStatus, error) {
			return c.Admin(f).ClusterStatus(ctx)
		}, func(st api.ClusterStatus) bool { return st.AppliedIndex >= lst.CommitIndex })
	}

	paused := c.Nodes[ld]
	paused.Pause()
	defer paused.Resume()
	pausedAt := time.Now()
	var wg sync.WaitGroup
	took := make([]time.Duration, len(followers))
	codes := make([]int, len(followers))
	for n, f := range followers {
		wg.Go(func() {
			start := time.Now()
			codes[n], _ = staleAccountRead(ctx, c.URL(f), key1)
			took[n] = time.Since(start)
		})
	}
	wg.Wait()
	for n, f := range followers {
		t.Logf("coordinator %d: key1's first stale read after the pause: %d in %s", f, codes[n], took[n].Round(time.Millisecond))
		if codes[n] != 200 || took[n] > 3*time.Second {
			t.Fatalf("coordinator %d answered key1's stale read %d after %s; want 200 within the lease ask's 2 s and a margin", f, codes[n], took[n].Round(time.Millisecond))
		}
	}
	nl, err := c.LeaderIndexSkipping(map[int]bool{ld: true}, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	f := followers[0]
	if f == nl {
		f = followers[1]
	}
	framework.PollFor(t, fmt.Sprintf("coordinator %d to follow the new leader", f), 30*time.Second, 20*time.Millisecond, func(ctx context.Context) (api.ClusterStatus, error) {
		return c.Admin(f).ClusterStatus(ctx)
	}, func(st api.ClusterStatus) bool { return st.LeaderID == c.Nodes[nl].ID })
	// Past the paused leader's lease ask, which failed by now.
	time.Sleep(time.Until(pausedAt.Add(2500 * time.Millisecond)))
	if d := time.Since(pausedAt); d > 6*time.Second {
		t.Logf("the new leader took %s to be known: past the 5 s the old leader's failed ask held reads on the local share before this release, so this run does not tell the two apart (it still checks the lease)", d.Round(time.Millisecond))
	}
	req, _ := http.NewRequestWithContext(ctx, "GET", c.URL(f)+"/v1/account?consistency=stale", nil)
	req.Header.Set("X-API-Key", key2)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("X-RateLimit-Limit") != strconv.Itoa(limit) {
		t.Fatalf("key2's stale read at coordinator %d under the new leader: %d, X-RateLimit-Limit %q; want 200 and the key's limit %d, leased from the new leader (%d: the follower's own share, as without a leader)",
			f, resp.StatusCode, resp.Header.Get("X-RateLimit-Limit"), limit, limit/3)
	}
}

// staleAccountRead is GET /v1/account?consistency=stale at url with key: its
// status.
func staleAccountRead(ctx context.Context, url, key string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", url+"/v1/account?consistency=stale", nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("X-API-Key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}
