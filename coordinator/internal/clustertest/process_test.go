package clustertest

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/client"
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
		Secret: "proc-test-secret-0123456789", RaftTimeout: framework.RaftTimeout})
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
	// restarted one: each read on its own, ticketReaders at a time.
	for i := range c.Nodes {
		c.WaitReady(i, 30*time.Second)
	}
	readStart := time.Now()
	if err := readEveryTicket(ctx, c, k.Key, acked); err != nil {
		t.Fatal(err)
	}
	t.Logf("read %d acknowledged tickets through each of %d nodes in %v", len(acked), len(c.Nodes), time.Since(readStart).Round(time.Millisecond))
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

// ticketReaders is how many reads readEveryTicket has in flight.
const ticketReaders = 8

// readEveryTicket reads (GET /v1/tickets/{id}) each of ids through each
// node of c, ticketReaders reads at a time, and returns the first failure:
// "node N: acknowledged ticket ID: error". A 503 (leadership still settling
// after a restart) is retried for up to 20 s a read, as the API tells
// clients to. After a failure the reads not yet begun are not made.
func readEveryTicket(ctx context.Context, c *framework.ProcessCluster, key string, ids []string) error {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = ticketReaders
	defer tr.CloseIdleConnections()
	type read struct {
		node int
		id   string
	}
	reads := make(chan read)
	var mu sync.Mutex
	var first error
	failed := func() bool { mu.Lock(); defer mu.Unlock(); return first != nil }
	var wg sync.WaitGroup
	for range ticketReaders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			clients := make([]*client.Client, len(c.Nodes))
			for i := range clients {
				clients[i] = c.Client(i, key)
				clients[i].HTTP.Transport = tr
			}
			for r := range reads {
				if failed() {
					continue
				}
				for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
					_, err := clients[r.node].Ticket(ctx, r.id)
					if err == nil {
						break
					}
					if api.StatusOf(err) != 503 || time.Now().After(deadline) {
						mu.Lock()
						if first == nil {
							first = fmt.Errorf("node %d: acknowledged ticket %s: %w", r.node, r.id, err)
						}
						mu.Unlock()
						break
					}
				}
			}
		}()
	}
	for i := range c.Nodes {
		for _, id := range ids {
			if failed() {
				break
			}
			reads <- read{i, id}
		}
	}
	close(reads)
	wg.Wait()
	return first
}
