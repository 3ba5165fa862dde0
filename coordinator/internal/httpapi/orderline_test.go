package httpapi

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/hostplane/hostplane/internal/logsetup"
	"github.com/hostplane/hostplane/internal/proccpu"
)

// TestInfoAtIsLoggerInfo: infoAt writes the line Logger.Info writes, with
// AddSource the same source function and file (the caller's), at its first
// line (which looks the caller up) and at the next (which takes it from the
// cache); below the handler's level it writes nothing.
func TestInfoAtIsLoggerInfo(t *testing.T) {
	opts := &slog.HandlerOptions{AddSource: true, ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		switch a.Key {
		case slog.TimeKey:
			return slog.Attr{}
		case slog.SourceKey: // the two calls are on different lines
			src := a.Value.Any().(*slog.Source)
			return slog.String(slog.SourceKey, src.Function+" "+src.File)
		}
		return a
	}}
	var pc atomic.Uintptr
	var viaInfo, viaAt bytes.Buffer
	info := slog.New(slog.NewTextHandler(&viaInfo, opts)).With("component", "api")
	at := slog.New(slog.NewTextHandler(&viaAt, opts)).With("component", "api")
	for range 2 {
		info.Info("server ordered", "server", "srv_1", "account", "acc_1", "amount_usd_cents", int64(500))
		infoAt(at, &pc, "server ordered", slog.String("server", "srv_1"), slog.String("account", "acc_1"), slog.Int64("amount_usd_cents", 500))
	}
	if viaAt.String() != viaInfo.String() || !strings.Contains(viaInfo.String(), "httpapi.TestInfoAtIsLoggerInfo ") || !strings.Contains(viaInfo.String(), "/orderline_test.go\"") {
		t.Fatalf("infoAt wrote\n%s\nLogger.Info wrote\n%s", viaAt.String(), viaInfo.String())
	}
	var quiet bytes.Buffer
	infoAt(slog.New(slog.NewTextHandler(&quiet, &slog.HandlerOptions{Level: slog.LevelWarn})), &pc, "server ordered")
	if quiet.Len() != 0 {
		t.Fatalf("an info line below the level: %q", quiet.String())
	}
}

// BenchmarkServerOrderedLine is the "server ordered" line through the
// coordinator's text format, to io.Discard: as Logger.Info writes it (the
// caller looked up per line) and as infoAt does (looked up once); and
// infoAt/file, to a file opened as the test rig opens a coordinator's log:
// the line's formatting and its write(2), as an order pays them under
// BenchmarkOrderCPU. cpu-ns/op is the process's CPU time per line, steadier than ns/op on a
// loaded machine.
func BenchmarkServerOrderedLine(b *testing.B) {
	log := logsetup.New("text", "info", "hostplane-coordinator", io.Discard).With("component", "api")
	// O_APPEND, as tests/framework's StartInGroup opens it.
	f, err := os.OpenFile(filepath.Join(b.TempDir(), "coordinator.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	toFile := logsetup.New("text", "info", "hostplane-coordinator", f).With("component", "api")
	b.Run("Logger.Info", func(b *testing.B) {
		b.ReportAllocs()
		defer cpuPerOp(b)()
		for b.Loop() {
			log.Info("server ordered", "server", "srv_01kt3j5v0x9q8m2a7b6c5d4e3f", "account", "acc_01kt3j5v0x9q8m2a7b6c5d4e3f",
				"plan", "vps-small", "invoice", "INV-2026-000123", "amount_usd_cents", int64(500), "action", "act_01kt3j5v0x9q8m2a7b6c5d4e3f")
		}
	})
	for _, c := range []struct {
		name string
		log  *slog.Logger
	}{{"infoAt", log}, {"infoAt/file", toFile}} {
		b.Run(c.name, func(b *testing.B) {
			var pc atomic.Uintptr
			b.ReportAllocs()
			defer cpuPerOp(b)()
			for b.Loop() {
				infoAt(c.log, &pc, "server ordered", slog.String("server", "srv_01kt3j5v0x9q8m2a7b6c5d4e3f"), slog.String("account", "acc_01kt3j5v0x9q8m2a7b6c5d4e3f"),
					slog.String("plan", "vps-small"), slog.String("invoice", "INV-2026-000123"), slog.Int64("amount_usd_cents", 500),
					slog.String("action", "act_01kt3j5v0x9q8m2a7b6c5d4e3f"))
			}
		})
	}
}

// cpuPerOp reports the process's CPU time per op (cpu-ns/op) from now
// until the function it returns runs.
func cpuPerOp(b *testing.B) func() {
	cpu0 := proccpu.Self()
	return func() { b.ReportMetric(float64((proccpu.Self()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op") }
}
