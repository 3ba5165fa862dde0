package clustertest

import (
	"net/http"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/server"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/coordinator/internal/testcluster"
	"github.com/hostplane/hostplane/pkg/api"
	bolt "go.etcd.io/bbolt"
)

// TestUsageFlushWithoutQuorum: a leader that lost both followers answers
// stale reads, and its usage flush cannot commit: the proposal, appended to
// its log only, fails when it steps down. The followers come back and a
// leader is elected: the old one, whose log holds the flush (committed
// then, and the kept flush proposed again: written once), or another (the
// entry is dropped from the old leader's log, and the old leader, now a
// follower, hands the kept flush's uses to the new one). Either way the
// key's use count and usage log hold each request once.
func TestUsageFlushWithoutQuorum(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	// n1, the leader, with a lease of 4 s (half its heartbeat timeout):
	// it keeps leading, and flushing every 200 ms, for that long after it
	// lost its followers. Its election timeout (8 s) against theirs
	// (1 s) makes one of them more likely to lead once they are back.
	c := testcluster.New(t, 3, func(i int, cfg *server.Config) {
		if i == 0 {
			cfg.HeartbeatTimeout, cfg.ElectionTimeout = 8*time.Second, 8*time.Second
		}
	})
	waitAllAtLevel(t, c, fsm.LevelUsageFlush)
	acc, key := c.NewAccount("usage-quorum@example.com")
	ld := c.WaitLeader(leaderWait)
	if ld != 0 {
		c.Retry503(func() error {
			_, err := c.Admin(ld).ClusterTransferLeadership(t.Context(), c.Nodes[0].ID)
			return err
		})
		waitAllSeeLeader(t, c, c.Nodes[0].ID)
		ld = 0
	}
	old := c.Nodes[ld]
	var keyID string
	if err := old.Server.Node.FSM.Read(func(r store.ReadTx) error {
		ks, err := r.AccountKeys(acc.ID)
		if err == nil && len(ks) == 1 {
			keyID = ks[0].ID
		}
		return err
	}); err != nil || keyID == "" {
		t.Fatalf("the account's key: %v", err)
	}
	uses := func(s *server.Server) int64 {
		var k api.KeyInfo
		_ = s.Node.FSM.Read(func(r store.ReadTx) (err error) { k, err = r.Key(keyID); return })
		return k.UseCount
	}
	f1, f2 := (ld+1)%3, (ld+2)%3
	start := time.Now()
	var wg sync.WaitGroup
	for _, i := range []int{f1, f2} {
		wg.Add(1)
		go func() { defer wg.Done(); c.Kill(i) }()
	}
	wg.Wait()
	killed := time.Since(start)
	const calls = 4
	for i := 0; i < calls; i++ {
		if rep := newAPIClient(t, c.URL(ld)).Call(key, "GET", "/v1/account?consistency=stale", nil, nil); rep.Status != http.StatusOK {
			t.Fatalf("stale read on the leader without its followers: %s", rep)
		}
	}
	// Two flush intervals: the leader flushed them (a proposal that cannot
	// commit) while it still led, unless it stepped down before.
	time.Sleep(400 * time.Millisecond)
	t.Logf("followers stopped in %v; the leader still leads 400 ms after the uses: %v", killed.Round(time.Millisecond), old.Server.Node.IsLeader())
	// It steps down (no quorum for the lease); what it flushed meanwhile
	// was not written: its FSM applies committed entries only.
	for deadline := time.Now().Add(20 * time.Second); old.Server.Node.IsLeader(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the leader without its followers never stepped down")
		}
	}
	time.Sleep(500 * time.Millisecond)
	if n := uses(old.Server); n != 0 {
		t.Fatalf("use_count %d written without a quorum", n)
	}
	c.Restart(f1)
	c.Restart(f2)
	c.WaitConverged(30 * time.Second)
	nl := c.WaitLeader(leaderWait)
	t.Logf("the old leader %s, the new %s", old.ID, c.Nodes[nl].ID)
	deadline := time.Now().Add(30 * time.Second)
	for uses(c.Nodes[nl].Server) < calls && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	// A little longer: a flush written twice would show now.
	time.Sleep(3 * time.Second)
	nl = c.WaitLeader(leaderWait)
	if n := uses(c.Nodes[nl].Server); n != calls {
		t.Fatalf("use_count %d after %d uses the leader flushed without a quorum, want %d", n, calls, calls)
	}
	var log []api.KeyUsage
	_ = c.Nodes[nl].Server.Node.FSM.Read(func(r store.ReadTx) (err error) { log, err = r.KeyUsage(keyID, 1000); return })
	if len(log) != calls {
		t.Fatalf("usage log: %d entries, want %d", len(log), calls)
	}
}

// TestUsageFlushMixedLevels: a cluster with a coordinator that applies only
// semantics level 2 (as the release before this one) stays at 2, and its
// leader's usage flushes are the command that coordinator applies: every
// replica holds the same use count, with no flush id on the key. Once that
// coordinator is upgraded the level rises to 3, the flushes carry their ids,
// and the replicas still agree.
//
// Below level 3 a flush whose proposal an election fails is dropped, as
// README says (mid-upgrade only), so the uses at level 2 are made again
// when the term moved and the replicas agree on fewer; at level 3 none is
// lost.
func TestUsageFlushMixedLevels(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	c := testcluster.New(t, 3, func(i int, cfg *server.Config) {
		if i == 0 {
			cfg.TestMaxLevel = fsm.LevelUsageFlush - 1 // the first leader: a new cluster starts at its level
		}
	})
	acc, key := c.NewAccount("usage-levels@example.com")
	var keyID string
	// keys is key's record on every replica once all have applied the
	// leader's flush of want uses, or, after within, what each holds (ok
	// false).
	keys := func(want int64, within time.Duration) (out []store.Key, ok bool) {
		t.Helper()
		for deadline := time.Now().Add(within); ; time.Sleep(100 * time.Millisecond) {
			out, ok = make([]store.Key, len(c.Nodes)), true
			for i, nd := range c.Nodes {
				_ = nd.Server.Node.FSM.View(func(tx *bolt.Tx) error {
					if keyID == "" {
						ks, _ := store.Read(tx).AccountKeys(acc.ID)
						if len(ks) == 1 {
							keyID = ks[0].ID
						}
					}
					return store.GetJSON(tx, store.BucketKeys, []byte(keyID), &out[i])
				})
				ok = ok && out[i].UseCount == want
			}
			if ok || time.Now().After(deadline) {
				return out, ok
			}
		}
	}
	counts := func(ks []store.Key) (n []int64) {
		for _, k := range ks {
			n = append(n, k.UseCount)
		}
		return n
	}
	use := func(n int) {
		t.Helper()
		for range n {
			c.Retry503(func() error { _, err := c.Client(c.WaitLeader(leaderWait), key).Account(t.Context()); return err })
		}
	}
	term := func() uint64 { return c.Nodes[c.WaitLeader(leaderWait)].Server.Node.Term() }
	// The leader asks the members every 3 s: a few rounds, the level stays.
	time.Sleep(7 * time.Second)
	for i, nd := range c.Nodes {
		if l := nd.Server.Node.FSM.ClusterLevel(); l != fsm.LevelUsageFlush-1 {
			t.Fatalf("coordinator %d at level %d with a member that applies only %d", i, l, fsm.LevelUsageFlush-1)
		}
	}
	var counted int64 // the uses the replicas hold
	for round := 1; ; round++ {
		from := term()
		use(3)
		ks, ok := keys(counted+3, 15*time.Second)
		if ok {
			counted += 3
			for i, k := range ks {
				if len(k.UsageFlushes) != 0 {
					t.Fatalf("coordinator %d: flush ids %v on the key below level %d", i, k.UsageFlushes, fsm.LevelUsageFlush)
				}
			}
			break
		}
		if to := term(); to == from || round == 3 {
			t.Fatalf("use counts %v, want %d (term %d → %d, round %d)", counts(ks), counted+3, from, to, round)
		}
		// A flush the election failed was dropped: the replicas agree on
		// what was written (the leader's count), at most every use.
		agreed := ks[c.WaitLeader(leaderWait)].UseCount
		if ks, ok = keys(agreed, 15*time.Second); !ok || agreed < counted || agreed > counted+3 {
			t.Fatalf("after an election below level %d: use counts %v, want one count from %d to %d", fsm.LevelUsageFlush, counts(ks), counted, counted+3)
		}
		t.Logf("an election (term %d → %d) dropped %d of 3 uses' flush below level %d: made again", from, term(), counted+3-agreed, fsm.LevelUsageFlush)
		counted = agreed
	}
	c.Kill(0)
	c.Nodes[0].Cfg.TestMaxLevel = 0
	c.Restart(0)
	waitAllAtLevel(t, c, fsm.LevelUsageFlush)
	use(2)
	ks, ok := keys(counted+2, 30*time.Second)
	if !ok {
		t.Fatalf("use counts %v at level %d, want %d", counts(ks), fsm.LevelUsageFlush, counted+2)
	}
	if len(ks[0].UsageFlushes) == 0 {
		t.Fatalf("no flush id on the key at level %d", fsm.LevelUsageFlush)
	}
	for i, k := range ks[1:] {
		if !reflect.DeepEqual(k, ks[0]) {
			t.Fatalf("coordinator %d's key %+v, coordinator 1's %+v", i+2, k, ks[0])
		}
	}
}
