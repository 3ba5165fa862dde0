package sysd

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coreos/go-systemd/v22/journal"

	"github.com/hostplane/hostplane/tests/framework"
)

// listen opens a datagram socket standing in for systemd's notify socket.
func listen(t *testing.T) *net.UnixConn {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	return c
}

func read(t *testing.T, c *net.UnixConn, d time.Duration) (string, bool) {
	t.Helper()
	buf := make([]byte, 4096)
	_ = c.SetReadDeadline(time.Now().Add(d))
	n, err := c.Read(buf)
	if err != nil {
		return "", false
	}
	return string(buf[:n]), true
}

func TestReadyStatusStopping(t *testing.T) {
	c := listen(t)
	Ready(slog.Default(), "serving")
	if m, _ := read(t, c, time.Second); m != "READY=1\nSTATUS=serving" {
		t.Fatalf("ready message %q", m)
	}
	Stopping(slog.Default())
	if m, _ := read(t, c, time.Second); m != "STOPPING=1" {
		t.Fatalf("stopping message %q", m)
	}
}

func TestWatchdogPingsOnlyWhileTheCheckPasses(t *testing.T) {
	c := listen(t)
	t.Setenv("WATCHDOG_USEC", "300000") // 300ms: a check every 100ms
	var healthy atomic.Bool
	var failed atomic.Int32 // checks that failed
	healthy.Store(true)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Watchdog(ctx, slog.Default(), func(context.Context) error {
			if healthy.Load() {
				return nil
			}
			failed.Add(1)
			return errors.New("stuck")
		})
	}()
	defer func() { cancel(); <-done }()
	for i := 0; i < 3; i++ {
		if m, ok := read(t, c, time.Second); !ok || m != "WATCHDOG=1" {
			t.Fatalf("ping %d: %q %v", i, m, ok)
		}
	}
	healthy.Store(false)
	// Once a check has failed, the ping of any check that passed before the
	// switch has been sent (one loop: check, ping, tick): a fixed 150 ms was
	// not that under load, and its late ping failed the test below.
	framework.WaitFor(t, "a failed check after the switch", 10*time.Second, 5*time.Millisecond, func() bool {
		return failed.Load() > 0
	})
	for { // drain a ping sent before the switch
		if _, ok := read(t, c, 10*time.Millisecond); !ok {
			break
		}
	}
	if m, ok := read(t, c, 500*time.Millisecond); ok {
		t.Fatalf("pinged %q while the check fails", m)
	}
	healthy.Store(true)
	if m, ok := read(t, c, time.Second); !ok || m != "WATCHDOG=1" {
		t.Fatalf("no ping after recovery: %q", m)
	}
}

func TestWatchdogOffWithoutWatchdogUsec(t *testing.T) {
	listen(t)
	t.Setenv("WATCHDOG_USEC", "")
	done := make(chan struct{})
	go func() {
		Watchdog(context.Background(), slog.Default(), func(context.Context) error { return nil })
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("Watchdog kept running with the watchdog off")
	}
}

func TestJournalHandlerFields(t *testing.T) {
	type entry struct {
		msg  string
		pri  journal.Priority
		vars map[string]string
	}
	var got []entry
	h := NewJournalHandler("hostplane-coordinator", slog.LevelInfo)
	h.send = func(msg string, p journal.Priority, vars map[string]string) error {
		got = append(got, entry{msg, p, vars})
		return nil
	}
	log := slog.New(h).With("node", "c1")
	log.Debug("hidden")
	log.With("component", "api").Info("request done", "request_id", "req_1", "status", 200)
	log.WithGroup("session").Warn("peer gone", "action-id", "act_9", slog.Group("peer", "addr", "10.0.0.1"))
	log.Error("boom", "message", "shadow", "_x", 1)
	if len(got) != 3 {
		t.Fatalf("got %d entries, want 3 (debug filtered)", len(got))
	}
	want := map[string]string{"NODE": "c1", "COMPONENT": "api", "REQUEST_ID": "req_1", "STATUS": "200",
		"SYSLOG_IDENTIFIER": "hostplane-coordinator", "LEVEL": "INFO"}
	for k, v := range want {
		if got[0].vars[k] != v {
			t.Errorf("%s = %q, want %q (all: %v)", k, got[0].vars[k], v, got[0].vars)
		}
	}
	if got[0].msg != "request done" || got[0].pri != journal.PriInfo {
		t.Errorf("first entry %q priority %d", got[0].msg, got[0].pri)
	}
	if got[1].vars["SESSION_ACTION_ID"] != "act_9" || got[1].vars["SESSION_PEER_ADDR"] != "10.0.0.1" ||
		got[1].vars["NODE"] != "c1" || got[1].pri != journal.PriWarning {
		t.Errorf("grouped entry: %v priority %d", got[1].vars, got[1].pri)
	}
	if got[2].vars["ATTR_MESSAGE"] != "shadow" || got[2].vars["X"] != "1" || got[2].pri != journal.PriErr {
		t.Errorf("reserved names: %v", got[2].vars)
	}
	for _, e := range got {
		for k := range e.vars {
			if strings.Trim(k, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") != "" || k[0] == '_' {
				t.Errorf("invalid journald field name %q", k)
			}
		}
	}
}
