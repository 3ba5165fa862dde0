package clustertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
	bolt "go.etcd.io/bbolt"
)

func TestMain(m *testing.M) { os.Exit(framework.Main(m)) }

// TestSIGKILLedLeaderProcess runs three coordinator processes, SIGKILLs the leader
// during concurrent writes, and restarts it: nothing acknowledged is lost, and the
// killed node (whose unsynced FSM file is discarded and rebuilt from the Raft log)
// serves every acknowledged write again.
func TestSIGKILLedLeaderProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the coordinator and runs 3 processes")
	}
	c := framework.NewProcessCluster(t, framework.ProcessOptions{N: 3, Bin: framework.Coordinator(t), NodePrefix: "p",
		Secret: "proc-test-secret-0123456789", RaftTimeout: 500 * time.Millisecond})
	ctx := context.Background()
	leaderOf := func() int { return c.WaitLeader(20 * time.Second) }
	ld := leaderOf()
	acc, err := c.Admin(ld).CreateAccount(ctx, api.AccountCreateRequest{Email: "proc@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	k, err := c.Admin(ld).CreateKey(ctx, acc.ID, api.KeyCreateRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range c.Nodes {
		c.WaitReady(i, 30*time.Second)
	}
	var mu sync.Mutex
	var acked []string
	var stop atomic.Bool
	var alive [3]atomic.Bool
	for i := range alive {
		alive[i].Store(true)
	}
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for n := 0; !stop.Load(); n++ {
				i := (w + n) % 3
				if !alive[i].Load() {
					continue
				}
				cl := c.Client(i, k.Key)
				cl.HTTP.Timeout = 5 * time.Second
				tk, err := cl.CreateTicket(ctx, api.TicketCreateRequest{Subject: fmt.Sprintf("p%d-%d", w, n), Message: "m"}, "")
				if err != nil {
					time.Sleep(20 * time.Millisecond)
					continue
				}
				mu.Lock()
				acked = append(acked, tk.ID)
				mu.Unlock()
			}
		}(w)
	}
	time.Sleep(1500 * time.Millisecond)
	alive[ld].Store(false)
	c.Kill(ld)
	time.Sleep(3 * time.Second)
	c.Restart(ld)
	alive[ld].Store(true)
	time.Sleep(time.Second)
	stop.Store(true)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(acked) == 0 {
		t.Fatal("no write was acknowledged")
	}
	// Every acknowledged ticket is readable through every node, including the
	// restarted one; and the list total matches exactly (nothing applied twice).
	for i := range c.Nodes {
		c.WaitReady(i, 30*time.Second)
		cl := c.Client(i, k.Key)
		for _, id := range acked {
			// A 503 (leadership still settling after the restart) is retried, as
			// the API tells clients to.
			for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
				_, err := cl.Ticket(ctx, id)
				var ae *api.Error
				if err == nil {
					break
				}
				if !errors.As(err, &ae) || ae.StatusCode != 503 || time.Now().After(deadline) {
					t.Fatalf("node %d: acknowledged ticket %s: %v", i, id, err)
				}
			}
		}
	}
	logs, _ := os.ReadFile(c.Nodes[ld].LogPath())
	if !strings.Contains(string(logs), "was not closed cleanly") {
		t.Errorf("restarted node did not report rebuilding its FSM after SIGKILL")
	}
	// The restarted node's own state (a local backup, not forwarded) holds them all.
	lst, err := c.Admin(leaderOf()).ClusterStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		st, err := c.Admin(ld).ClusterStatus(ctx)
		if err == nil && st.AppliedIndex >= lst.CommitIndex {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("restarted node did not catch up: %+v %v", st, err)
		}
	}
	var snap bytes.Buffer
	if err := c.Admin(ld).Backup(ctx, &snap); err != nil {
		t.Fatal(err)
	}
	dbFile := filepath.Join(t.TempDir(), "restarted.db")
	raw := snap.Bytes()
	if i := bytes.IndexByte(raw, '\n'); i > 0 {
		raw = raw[i+1:]
	}
	if err := os.WriteFile(dbFile, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(dbFile, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_ = db.View(func(tx *bolt.Tx) error {
		for _, id := range acked {
			if tx.Bucket(store.BucketTickets).Get(store.OwnedKey(acc.ID, id)) == nil {
				t.Fatalf("restarted node's own FSM lacks acknowledged ticket %s", id)
			}
		}
		return nil
	})
	t.Logf("%d writes acknowledged across a SIGKILL of leader p%d", len(acked), ld+1)
}
