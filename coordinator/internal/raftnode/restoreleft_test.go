package raftnode

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/tests/framework"
)

// A coordinator that ended during a `cluster restore` (killed between
// PrepareRestore and its Close) leaves the spooled backup and its marked
// copy in the data directory, each the size of a backup. The next start
// removes them, and the files of a restore cut short earlier (the spool,
// its check copy, the marked copy's database), logging each with its size;
// a file of any other name stays. Before, every one of them stayed.
//
// A restore spools in the product's own sub-directory (restore-spool/);
// the names an older build spooled to in the data directory itself are
// removed only when they can only be a restore's: an operator's own file
// named as a spool (a backup saved as restore-20261207.hpsnap, with no
// .check, .marked or .marked.db beside it) stays, and the start names it.
// Before, the operator's file was removed.
func TestStartRemovesAnInterruptedRestoresFiles(t *testing.T) {
	dir, addr := t.TempDir(), freeAddr(t)
	n := openRegistered(t, dir, addr, "kept", 1)
	var backup bytes.Buffer
	if err := n.FSM.Backup(&backup); err != nil {
		t.Fatal(err)
	}
	p, err := n.PrepareRestore(bytes.NewReader(backup.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	// The process ends here: p is never closed.
	left := []string{p.path}
	if p.marked == "" {
		t.Fatal("this binary applies the restore epoch level, but the restore made no marked copy")
	}
	left = append(left, p.marked)
	for _, path := range left {
		if filepath.Dir(path) != filepath.Join(dir, "restore-spool") {
			t.Errorf("the restore spooled %s outside the data directory's restore-spool/", path)
		}
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	// An older build's restore cut short inside PrepareRestore, at each of
	// its steps.
	for _, name := range []string{"restore-1234.hpsnap", "restore-1234.hpsnap.check", "restore-99.hpsnap.marked.db"} {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, backup.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		left = append(left, path)
	}
	mine := "restore-20261207.hpsnap"
	others := []string{"restore-notes.txt", "restore-1234.hpsnap.keep", "backup.hpsnap.ready", "restore-x.hpsnap", "restore-.hpsnap.marked", mine}
	for _, name := range others {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("mine"), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	sizes := map[string]int64{}
	for _, path := range left {
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		sizes[path] = st.Size()
	}
	var logs framework.SyncBuilder
	n, err = Open(Config{ID: "idle", Dir: dir, BindAddr: addr, Bootstrap: true,
		HeartbeatTimeout: 200 * time.Millisecond, ElectionTimeout: 200 * time.Millisecond, LeaderLeaseTimeout: 100 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	for _, path := range left {
		if _, err := os.Stat(path); !os.IsNotExist(err) {
			t.Errorf("%s is still in the data directory after the restart (stat: %v)", filepath.Base(path), err)
		}
		want := fmt.Sprintf("path=%s bytes=%d", path, sizes[path])
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the start does not log the removal of %s with its size (want %q in the log)", filepath.Base(path), want)
		}
	}
	for _, name := range others {
		if b, err := os.ReadFile(filepath.Join(dir, name)); err != nil || string(b) != "mine" {
			t.Errorf("%s, not a restore's, was changed at the start: %q, %v", name, b, err)
		}
	}
	if !strings.Contains(logs.String(), "path="+filepath.Join(dir, mine)) {
		t.Errorf("the start does not name the %s it kept; log:\n%s", mine, logs.String())
	}
	waitLeads(t, n)
	var addrs map[string]string
	if err := n.FSM.Read(func(r store.ReadTx) error { addrs = r.ClusterAPIAddrs(); return nil }); err != nil {
		t.Fatal(err)
	}
	if _, ok := addrs["kept"]; !ok {
		t.Errorf("the state after the restart lacks the write made before it: %v", addrs)
	}
}

// openRegistered opens the one-member node of dir on addr (openAt), waits
// for it to lead, and commits times registrations of coordinator id.
func openRegistered(t *testing.T, dir, addr, id string, times int) *Node {
	t.Helper()
	n, err := openAt(dir, addr)
	if err != nil {
		t.Fatal(err)
	}
	waitLeads(t, n)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for range times {
		env, err := fsm.NewEnvelope(fsm.CmdNodeRegister, time.Now(), fsm.NodeRegister{ID: id, APIAddr: "127.0.0.1:1"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := n.Apply(ctx, env); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

// The start removes from restore-spool/ only files named as a restore's
// spool, and nothing when restore-spool is a symbolic link (an operator who
// points it elsewhere keeps every file there). Before, every regular file
// in the link's target was removed.
func TestStartKeepsFilesRestoreSpoolDoesNotOwn(t *testing.T) {
	for _, link := range []bool{false, true} {
		t.Run(fmt.Sprintf("symlink=%v", link), func(t *testing.T) {
			dir, other := t.TempDir(), t.TempDir()
			spool := filepath.Join(dir, "restore-spool")
			target := spool
			if link {
				target = other
				if err := os.Symlink(other, spool); err != nil {
					t.Fatal(err)
				}
			} else if err := os.Mkdir(spool, 0o700); err != nil {
				t.Fatal(err)
			}
			keep := []string{"notes.txt", "backup.db"}
			gone := []string{"restore-4242.hpsnap.ready"}
			if link {
				keep, gone = append(keep, gone...), nil
			}
			for _, name := range append(append([]string{}, keep...), gone...) {
				if err := os.WriteFile(filepath.Join(target, name), []byte("x"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			var logs framework.SyncBuilder
			removeRestoreLeftovers(dir, slog.New(slog.NewTextHandler(&logs, nil)))
			for _, name := range keep {
				if _, err := os.Stat(filepath.Join(target, name)); err != nil {
					t.Errorf("%s in %s was removed at the start (stat: %v); log:\n%s", name, target, err, logs.String())
				}
			}
			for _, name := range gone {
				if _, err := os.Stat(filepath.Join(target, name)); !os.IsNotExist(err) {
					t.Errorf("the restore's %s is still in restore-spool/ (stat: %v)", name, err)
				}
			}
			if link && !strings.Contains(logs.String(), "symbolic link") {
				t.Errorf("the start does not say it left the linked restore spool alone; log:\n%s", logs.String())
			}
		})
	}
}
