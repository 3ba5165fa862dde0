package framework_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

func TestMain(m *testing.M) { os.Exit(framework.Main(m)) }

// TestCoordinatorProcessControls drives one coordinator process through every
// control the framework offers and checks what a user would: a paused node
// answers nothing and serves again once resumed; a stopped (SIGTERM) or killed
// (SIGKILL) node is gone and, restarted, serves what it had acknowledged; a
// restart with another build runs that build (its version string).
func TestCoordinatorProcessControls(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the coordinator twice and runs it as a process")
	}
	c := framework.NewProcessCluster(t, framework.ProcessOptions{N: 1, Bin: framework.Coordinator(t), RaftTimeout: framework.RaftTimeout})
	p := c.Nodes[0]
	if c.Len() != 1 || c.WaitLeader(10*time.Second) != 0 || !c.Running(0) {
		t.Fatalf("one-node cluster: len %d, running %v", c.Len(), c.Running(0))
	}
	// The cluster secret reaches the coordinator in a file, not on its
	// command line, which every local user reads (ps, /proc/PID/cmdline).
	if cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p.Pid())); err != nil || len(cmdline) == 0 || strings.Contains(string(cmdline), c.Secret) {
		t.Fatalf("the coordinator's command line (%v) holds the cluster secret: %q", err, strings.ReplaceAll(string(cmdline), "\x00", " "))
	}
	ctx := context.Background()
	acc, err := c.Admin(0).CreateAccount(ctx, api.AccountCreateRequest{Email: "fw@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	k, err := c.Admin(0).CreateKey(ctx, acc.ID, api.KeyCreateRequest{})
	if err != nil {
		t.Fatal(err)
	}
	tk, err := c.Client(0, k.Key).CreateTicket(ctx, api.TicketCreateRequest{Subject: "kept", Message: "m"}, "")
	if err != nil {
		t.Fatal(err)
	}
	serves := func(what string) {
		t.Helper()
		if err := p.WaitReady(30 * time.Second); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		c.WaitLeader(20 * time.Second)
		if got, err := c.Client(0, k.Key).Ticket(ctx, tk.ID); err != nil || got.Subject != "kept" {
			t.Fatalf("%s: acknowledged ticket: %+v %v", what, got, err)
		}
	}

	p.Pause()
	if err := p.WaitReady(1500 * time.Millisecond); err == nil {
		t.Fatal("a paused (SIGSTOP) coordinator answered /readyz")
	}
	p.Resume()
	serves("after SIGCONT")

	p.Stop()
	if p.Alive() || c.Running(0) {
		t.Fatal("stopped coordinator still counted as running")
	}
	select {
	case <-p.Exited():
	default:
		t.Fatal("Stop returned before the process exited")
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	serves("after SIGTERM and start")

	c.Kill(0)
	if c.Running(0) {
		t.Fatal("killed coordinator still running")
	}
	c.Restart(0)
	serves("after SIGKILL and restart")

	v2 := framework.CoordinatorVersion(t, "fw-test-2")
	if out, err := exec.Command(v2, "version").Output(); err != nil || strings.TrimSpace(string(out)) != "fw-test-2" {
		t.Fatalf("build with version fw-test-2 prints %q (%v)", out, err)
	}
	if err := p.RestartWith(v2, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	serves("after restart with another build")
	logs, _ := os.ReadFile(p.LogPath())
	starts := strings.Split(string(logs), "coordinator started")
	if last := starts[len(starts)-1]; len(starts) < 5 || !strings.Contains(last, "version=fw-test-2") {
		t.Fatalf("the last start (of %d) does not run version fw-test-2: %.200s", len(starts)-1, last)
	}
}
