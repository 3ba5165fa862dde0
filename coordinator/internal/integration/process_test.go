package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/client"
	bolt "go.etcd.io/bbolt"
)

// proc is a coordinator running as its own OS process.
type proc struct {
	id, data, api, raft string
	cmd                 *exec.Cmd
}

func (p *proc) start(t *testing.T, bin string, bootstrap bool) {
	t.Helper()
	log, err := os.OpenFile(filepath.Join(p.data+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(bin, "run", "--node-id", p.id, "--data-dir", p.data, "--api-addr", p.api, "--raft-addr", p.raft,
		fmt.Sprintf("--bootstrap=%v", bootstrap), "--bootstrap-account=false", "--cluster-secret", "proc-test-secret-0123456789",
		"--rate-limit", "1000000", "--raft-heartbeat-timeout", "500ms", "--raft-election-timeout", "500ms", "--log-format", "text")
	p.cmd.Stdout, p.cmd.Stderr = log, log
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
}

func (p *proc) kill() {
	if p.cmd != nil && p.cmd.Process != nil {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		_, _ = p.cmd.Process.Wait()
		p.cmd = nil
	}
}

func (p *proc) admin() *client.Admin { return client.NewAdmin(filepath.Join(p.data, "admin.sock")) }

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitReady(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s not ready", url)
}

// TestSIGKILLedLeaderProcess runs three coordinator processes, SIGKILLs the leader
// during concurrent writes, and restarts it: nothing acknowledged is lost, and the
// killed node (whose unsynced FSM file is discarded and rebuilt from the Raft log)
// serves every acknowledged write again.
func TestSIGKILLedLeaderProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the coordinator and runs 3 processes")
	}
	dir, err := os.MkdirTemp("", "hpproc")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "hostplane-coordinator")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/hostplane/hostplane/coordinator/cmd/hostplane-coordinator").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	ps := make([]*proc, 3)
	for i := range ps {
		ps[i] = &proc{id: fmt.Sprintf("p%d", i+1), data: filepath.Join(dir, fmt.Sprintf("p%d", i+1)), api: freeAddr(t), raft: freeAddr(t)}
	}
	t.Cleanup(func() {
		for _, p := range ps {
			p.kill()
		}
		if !t.Failed() {
			os.RemoveAll(dir)
		} else {
			t.Logf("logs kept in %s", dir)
		}
	})
	for i, p := range ps {
		p.start(t, bin, i == 0)
	}
	waitReady(t, "http://"+ps[0].api)
	ctx := context.Background()
	for _, p := range ps[1:] {
		if _, err := ps[0].admin().ClusterJoin(ctx, p.id, p.raft, ""); err != nil {
			t.Fatal(err)
		}
	}
	leaderOf := func() int {
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			for i, p := range ps {
				if p.cmd == nil {
					continue
				}
				st, err := p.admin().ClusterStatus(ctx)
				if err == nil && st.State == "Leader" {
					return i
				}
			}
		}
		t.Fatal("no leader")
		return -1
	}
	ld := leaderOf()
	acc, err := ps[ld].admin().CreateAccount(ctx, api.AccountCreateRequest{Email: "proc@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	k, err := ps[ld].admin().CreateKey(ctx, acc.ID, api.KeyCreateRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		waitReady(t, "http://"+p.api)
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
				c := client.New("http://"+ps[i].api, k.Key)
				c.HTTP.Timeout = 5 * time.Second
				tk, err := c.CreateTicket(ctx, api.TicketCreateRequest{Subject: fmt.Sprintf("p%d-%d", w, n), Message: "m"}, "")
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
	ps[ld].kill()
	time.Sleep(3 * time.Second)
	ps[ld].start(t, bin, ld == 0)
	waitReady(t, "http://"+ps[ld].api)
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
	for i, p := range ps {
		waitReady(t, "http://"+p.api)
		c := client.New("http://"+p.api, k.Key)
		for _, id := range acked {
			// A 503 (leadership still settling after the restart) is retried, as
			// the API tells clients to.
			for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
				_, err := c.Ticket(ctx, id)
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
	logs, _ := os.ReadFile(ps[ld].data + ".log")
	if !strings.Contains(string(logs), "was not closed cleanly") {
		t.Errorf("restarted node did not report rebuilding its FSM after SIGKILL")
	}
	// The restarted node's own state (a local backup, not forwarded) holds them all.
	lst, err := ps[leaderOf()].admin().ClusterStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		st, err := ps[ld].admin().ClusterStatus(ctx)
		if err == nil && st.AppliedIndex >= lst.CommitIndex {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("restarted node did not catch up: %+v %v", st, err)
		}
	}
	var snap bytes.Buffer
	if err := ps[ld].admin().Backup(ctx, &snap); err != nil {
		t.Fatal(err)
	}
	dbFile := filepath.Join(dir, "restarted.db")
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
