package clustertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/coordinator/internal/testcluster"
	"github.com/hostplane/hostplane/pkg/api"
	bolt "go.etcd.io/bbolt"
)

// TestBackupHeaderNamesItsSnapshot: the X-Hostplane-Applied-Index header of a
// cluster backup is the applied index of exactly the state in the backup (the
// one the copy records in its meta bucket), taken while tickets are being
// written, from the leader and from a follower. A header read outside the
// backup's read transaction is a batch behind whenever a batch commits between
// the two.
func TestBackupHeaderNamesItsSnapshot(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test")
	}
	c := testcluster.New(t, 3, testcluster.WithRateLimit(1_000_000))
	_, key := c.NewAccount("backup-index@example.com")
	var written, failed atomic.Int64
	stop := c.TicketLoad(key, 8, "backup index", func(_ int, _ api.Ticket, err error) {
		if err != nil {
			failed.Add(1)
			return
		}
		written.Add(1)
	})
	defer stop()
	dir := t.TempDir()
	ld := c.WaitLeader(10 * time.Second)
	// The two reads race only when a batch commits between them: take
	// backups from two members at once for a while, under the load, and
	// longer until the state moved between 100 of them. What is waited for
	// is those 100, not a time: a loaded machine takes fewer backups a
	// second (each copies the database; at load ~40 a flat minute ended
	// with fewer), so the bound is only a guard against a hang, 10 minutes
	// or the test binary's -timeout less a minute.
	deadline, last := time.Now().Add(15*time.Second), time.Now().Add(10*time.Minute)
	if d, ok := t.Deadline(); ok && d.Add(-time.Minute).Before(last) {
		last = d.Add(-time.Minute)
	}
	var backups, moved, wrong, retried atomic.Int64
	var wg sync.WaitGroup
	for _, i := range []int{ld, (ld + 1) % 3} {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			var prev uint64
			for n := 0; (time.Now().Before(deadline) || moved.Load() < 100 && time.Now().Before(last)) && wrong.Load() < 5; n++ {
				header, snap, err := backupWithHeader(c, i)
				if errors.Is(err, errNoLeader) {
					// An election under the load (seen in CI at load ~5):
					// what is checked is the header of each backup taken.
					retried.Add(1)
					time.Sleep(100 * time.Millisecond)
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				got, err := snapshotAppliedIndex(filepath.Join(dir, fmt.Sprint("n", i+1)), snap)
				if err != nil {
					t.Error(err)
					return
				}
				backups.Add(1)
				if header != got {
					wrong.Add(1)
					t.Errorf("backup %d from n%d: header says applied index %d, the snapshot holds %d", n, i+1, header, got)
				}
				if got != prev {
					moved.Add(1)
				}
				prev = got
			}
		}(i)
	}
	wg.Wait()
	stop()
	t.Logf("%d backups, the state moved between %d of them (%d refused with 503 while leadership changed, retried); %d tickets written, %d failed",
		backups.Load(), moved.Load(), retried.Load(), written.Load(), failed.Load())
	if moved.Load() < 100 {
		// The race needs writes landing between backups.
		t.Fatalf("the state moved between only %d backups: too little load to tell", moved.Load())
	}
}

// errNoLeader is backupWithHeader's error for a 503: the member knows no
// leader for the moment.
var errNoLeader = errors.New("503 while leadership changes")

// backupWithHeader takes a backup from member i through its admin socket and
// returns the applied index its header names and the body.
func backupWithHeader(c *testcluster.Cluster, i int) (uint64, []byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", "http://admin/admin/cluster/backup", nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := c.Admin(i).HTTP.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode == http.StatusServiceUnavailable {
		return 0, nil, fmt.Errorf("backup from n%d: %w: %.200s", i+1, errNoLeader, body)
	}
	if err != nil || resp.StatusCode != 200 {
		return 0, nil, fmt.Errorf("backup from n%d: %d %v %.200s", i+1, resp.StatusCode, err, body)
	}
	h := resp.Header.Get("X-Hostplane-Applied-Index")
	idx, err := strconv.ParseUint(h, 10, 64)
	if err != nil {
		return 0, nil, fmt.Errorf("backup from n%d: X-Hostplane-Applied-Index %q: %v", i+1, h, err)
	}
	return idx, body, nil
}

// snapshotAppliedIndex writes a backup stream's database to path, opens it
// and returns the applied index it records.
func snapshotAppliedIndex(path string, snap []byte) (uint64, error) {
	nl := bytes.IndexByte(snap, '\n')
	if nl < 0 || !bytes.HasPrefix(snap, []byte("HOSTPLANE-FSM-SNAPSHOT")) {
		return 0, fmt.Errorf("backup does not start with the snapshot header: %.40q", snap)
	}
	if err := os.WriteFile(path, snap[nl+1:], 0o600); err != nil {
		return 0, err
	}
	defer os.Remove(path)
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return 0, err
	}
	defer db.Close()
	var idx uint64
	_ = db.View(func(tx *bolt.Tx) error { idx = store.AppliedIndex(tx); return nil })
	if idx == 0 {
		return 0, errors.New("backup records no applied index")
	}
	return idx, nil
}
