package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// TestOps17BackupAndRestoreOnDay2: an operator's backup and restore, as the
// README gives them, on a three-coordinator cluster whose leader moves.
//
//   - `cluster backup FILE` through a follower and through the leader: each
//     names the leader and an applied index, and each is a backup.
//   - Through a leader that hangs (SIGSTOP) after the stream started (run on
//     its own socket into a pipe, with a state larger than the socket's
//     buffers so the leader is stopped mid-copy): hostplanectl ends within
//     --stall-timeout and a few seconds, exit 1, saying it stalled and that
//     what went to the pipe is not a backup; `cluster restore` of those bytes
//     is refused (exit 2, "cut short") and changes nothing. Before, it waited
//     without end (the test's 60 s limit).
//   - `cluster restore` through a follower while the leader hangs: it answers
//     within the follower's bound, done or the 503 leader_unreachable with
//     what to do; run again once answered, the cluster serves what the backup
//     held on every coordinator: the ticket written before it, not the one
//     written after.
func TestOps17BackupAndRestoreOnDay2(t *testing.T) {
	r := lightRig(t, "ops17bk")
	ld := r.c.WaitLeader(20 * time.Second)
	leader, fol := r.c.Nodes[ld], r.c.Nodes[(ld+1)%3]
	ticket := func(subject, message string) api.Ticket {
		t.Helper()
		rep := r.call(ld, r.keyA, "POST", "/v1/tickets", api.TicketCreateRequest{Subject: subject, Message: message, Department: "technical", Priority: "medium"},
			map[string]string{"Idempotency-Key": "ops17-" + subject})
		if rep.Status != 201 {
			t.Fatalf("ticket %s: %s", subject, rep)
		}
		var tk api.Ticket
		rep.Decode(t, &tk)
		return tk
	}
	before := ticket("before-backup", "kept by the backup")

	// Through a follower, then through the leader.
	dir := t.TempDir()
	for _, p := range []*framework.CoordinatorProcess{fol, leader} {
		file := dir + "/via-" + p.ID + ".snap"
		run := ctl(t, p, "--json", "cluster", "backup", file)
		var sum struct {
			Bytes        int64  `json:"bytes"`
			Node         string `json:"node"`
			AppliedIndex uint64 `json:"applied_index"`
			Stale        bool   `json:"stale"`
		}
		if run.code != 0 || json.Unmarshal([]byte(run.stdout), &sum) != nil {
			t.Fatalf("backup through %s: %s", p.ID, run)
		}
		if st, err := os.Stat(file); err != nil || st.Size() != sum.Bytes || sum.Node != leader.ID || sum.AppliedIndex == 0 || sum.Stale {
			t.Fatalf("backup through %s: %+v, file %v %v; want the leader %s's copy of that size", p.ID, sum, st, err, leader.ID)
		}
	}
	backup := dir + "/via-" + fol.ID + ".snap"
	after := ticket("after-backup", "not in the backup")

	// A state well past the admin socket's buffers (about 0.4 MiB): 300
	// tickets of 20,000 characters.
	var wg sync.WaitGroup
	big := strings.Repeat("x", 20000)
	for w := range 6 {
		wg.Go(func() {
			for i := range 50 {
				rep := r.write(ld, r.keyA, "POST", "/v1/tickets", api.TicketCreateRequest{Subject: fmt.Sprintf("bulk %d-%d", w, i), Message: big, Department: "technical", Priority: "low"})
				if rep.Status != 201 {
					t.Errorf("bulk ticket: %s", rep)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	// Through the leader's own socket into a pipe the test reads, the leader
	// stopped once the first bytes arrived.
	ld = r.c.WaitLeader(20 * time.Second)
	leader = r.c.Nodes[ld]
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, framework.Ctl(t), "--socket", leader.AdminSocket(), "cluster", "backup", "-", "--stall-timeout", "5s")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	head := make([]byte, 4096)
	if _, err := io.ReadFull(out, head); err != nil {
		t.Fatalf("the backup's first bytes: %v (%s)", err, stderr.String())
	}
	leader.Pause()
	resumed := sync.OnceFunc(leader.Resume)
	defer resumed()
	paused := time.Now()
	rest, _ := io.ReadAll(out)
	err = cmd.Wait()
	took := time.Since(paused)
	resumed()
	partial := append(head, rest...)
	t.Logf("backup on the socket of a leader paused after its first bytes: %d bytes, ended after %s: %v, %q", len(partial), took.Round(time.Millisecond), err, stderr.String())
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("the backup from a paused leader: %v, want exit 1 (did the leader send it all before it stopped? %d bytes)", err, len(partial))
	}
	if took > 12*time.Second {
		t.Errorf("the backup from a paused leader ended %s after the pause; want within the 5 s stall timeout and slack", took.Round(time.Millisecond))
	}
	if msg := stderr.String(); !strings.Contains(msg, "stalled") || !strings.Contains(msg, "incomplete copy, not a backup") || !strings.Contains(msg, "run the backup again") {
		t.Errorf("stderr %q: want the stall, that the bytes out are not a backup, and what to do", msg)
	}
	cut := dir + "/cut.snap"
	if err := os.WriteFile(cut, partial, 0o600); err != nil {
		t.Fatal(err)
	}
	if run := ctl(t, fol, "cluster", "restore", cut); run.code != 2 || !strings.Contains(run.stderr, "cut short") {
		t.Errorf("restore of the stalled backup's bytes: %s; want exit 2 saying it is cut short", run)
	}
	if rep := r.call((ld+1)%3, r.keyA, "GET", "/v1/tickets/"+after.ID, nil, nil); rep.Status != 200 {
		t.Fatalf("after the refused restore, the ticket written after the backup: %s", rep)
	}

	// Restore through a follower while the leader hangs.
	ld = r.c.WaitLeader(20 * time.Second)
	leader, fol = r.c.Nodes[ld], r.c.Nodes[(ld+1)%3]
	leader.Pause()
	resumed = sync.OnceFunc(leader.Resume)
	defer resumed()
	start := time.Now()
	run := ctl(t, fol, "cluster", "restore", backup)
	took = time.Since(start)
	resumed()
	t.Logf("restore through %s with the leader %s paused, after %s: %s", fol.ID, leader.ID, took.Round(time.Millisecond), run)
	if took > 8*time.Second {
		t.Errorf("the restore through a follower answered after %s with the leader paused; want within 8 s", took.Round(time.Millisecond))
	}
	if run.code != 0 {
		lines := strings.Split(strings.TrimSuffix(run.stderr, "\n"), "\n")
		if run.code != 1 || len(lines) != 2 || !strings.Contains(lines[0], "503") || !strings.Contains(lines[0], "(leader_unreachable)") ||
			!strings.Contains(lines[1], "run the command again") {
			t.Fatalf("restore with the leader paused: %s; want done, or exit 1 with the 503 leader_unreachable and what to do", run)
		}
		for end := time.Now().Add(30 * time.Second); ; {
			if run = ctl(t, fol, "cluster", "restore", backup); run.code == 0 || time.Now().After(end) {
				break
			}
			t.Logf("restore again: %s", run)
			time.Sleep(time.Second)
		}
		if run.code != 0 {
			t.Fatalf("the restore run again: %s", run)
		}
	}
	for i, p := range r.c.Nodes {
		framework.WaitFor(t, p.ID+" to serve the backup's state", 30*time.Second, 200*time.Millisecond, func() bool {
			return r.apis[i].Call(r.keyA, "GET", "/v1/tickets/"+after.ID+"?consistency=stale", nil, nil).Status == 404
		})
		if rep := r.call(i, r.keyA, "GET", "/v1/tickets/"+before.ID, nil, nil); rep.Status != 200 {
			t.Errorf("%s after the restore, the ticket written before the backup: %s", p.ID, rep)
		}
		if rep := r.call(i, r.keyA, "GET", "/v1/tickets/"+after.ID, nil, nil); rep.Status != 404 {
			t.Errorf("%s after the restore, the ticket written after the backup: %s; want 404", p.ID, rep)
		}
	}
}
