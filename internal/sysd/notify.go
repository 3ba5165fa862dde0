// Package sysd is the daemons' side of systemd: sd_notify readiness, stopping and
// watchdog messages (Type=notify units), and a journald-native slog handler.
// Every call is a no-op when the process was not started by systemd (no
// NOTIFY_SOCKET, no journal).
package sysd

import (
	"context"
	"log/slog"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

func notify(log *slog.Logger, state string) {
	if _, err := daemon.SdNotify(false, state); err != nil && log != nil {
		log.Warn("sd_notify failed", "state", state, "err", err)
	}
}

// Ready tells systemd the service serves (READY=1) with a human status line.
func Ready(log *slog.Logger, status string) { notify(log, daemon.SdNotifyReady+"\nSTATUS="+status) }

// Status updates the status line systemctl status shows.
func Status(log *slog.Logger, status string) { notify(log, "STATUS="+status) }

// Stopping tells systemd the service is shutting down (STOPPING=1).
func Stopping(log *slog.Logger) { notify(log, daemon.SdNotifyStopping) }

// WatchdogInterval is the unit's WatchdogSec= as passed in WATCHDOG_USEC, or 0
// when the watchdog is off.
func WatchdogInterval() time.Duration {
	d, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		return 0
	}
	return d
}

// Watchdog runs check every third of the watchdog interval until ctx ends and
// sends WATCHDOG=1 only after a check passes, so systemd restarts a process whose
// work stopped progressing, not merely one whose goroutines died. check gets a
// deadline of half the interval. It returns at once when the watchdog is off.
func Watchdog(ctx context.Context, log *slog.Logger, check func(context.Context) error) {
	iv := WatchdogInterval()
	if iv <= 0 {
		return
	}
	t := time.NewTicker(iv / 3)
	defer t.Stop()
	failing := false
	for {
		cctx, cancel := context.WithTimeout(ctx, iv/2)
		err := check(cctx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			if !failing {
				log.Warn("watchdog check failed; not pinging systemd", "err", err)
			}
			failing = true
		default:
			if failing {
				log.Info("watchdog check passes again")
			}
			failing = false
			notify(log, daemon.SdNotifyWatchdog)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
