package server

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/tests/framework"
	"github.com/hostplane/hostplane/tests/framework/freeport"
)

// TestWatchdogCheckFollowsRealProgress: the check systemd's watchdog pings on
// passes on a serving single-node leader (its API answers and a Raft barrier goes
// through the FSM) and fails once Raft has shut down, and once the API listener
// stops serving, so a coordinator in either state is not kept alive.
func TestWatchdogCheckFollowsRealProgress(t *testing.T) {
	cfg := Defaults()
	dir := t.TempDir()
	cfg.NodeID, cfg.DataDir, cfg.AdminSocket = "wd1", dir, filepath.Join(dir, "admin.sock")
	// No /metrics listener: the default 127.0.0.1:8429 is a running `make
	// run`'s or a packaged coordinator's on this machine, whose listener made
	// Start fail here.
	cfg.APIAddr, cfg.RaftAddr, cfg.MetricsAddr = freeport.Addr(t, "tcp"), freeport.Addr(t, "tcp"), ""
	cfg.BootstrapAccount = false
	s, err := Start(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	check := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		return (&progress{s: s}).check(ctx)
	}
	framework.WaitFor(t, "leadership", 15*time.Second, 50*time.Millisecond, s.Node.IsLeader)
	if err := check(); err != nil {
		t.Fatalf("serving leader fails the check: %v", err)
	}
	if err := s.Node.Raft.Shutdown().Error(); err != nil {
		t.Fatal(err)
	}
	if err := check(); err == nil || !strings.Contains(err.Error(), "raft") {
		t.Fatalf("check with Raft shut down (API still up): %v, want a raft error", err)
	}
	_ = s.apiSrv.Close()
	if err := check(); err == nil || !strings.Contains(err.Error(), "/healthz") {
		t.Fatalf("check with the API listener closed: %v, want a /healthz error", err)
	}
}
