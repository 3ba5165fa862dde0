package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/hostplane/hostplane/internal/sysd"
)

// domainLister is the libvirt round trip the watchdog check makes.
type domainLister interface {
	ListDomains(ctx context.Context) ([]string, error)
}

// notifySystemd sends READY=1 once the local API answers (by then libvirt is
// connected, crashed operations are settled and the coordinator session is up or
// retrying on its own), then pings the systemd watchdog while both libvirt and
// the local API keep answering.
func notifySystemd(ctx context.Context, log *slog.Logger, hv domainLister, socket string) {
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", socket)
	}}}
	defer hc.CloseIdleConnections()
	healthy := func(ctx context.Context) error {
		if _, err := hv.ListDomains(ctx); err != nil {
			return fmt.Errorf("libvirt: %w", err)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://agent/v1/healthz", nil)
		if err != nil {
			return err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return fmt.Errorf("local api: %w", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("local api: %s", resp.Status)
		}
		return nil
	}
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := healthy(cctx)
		cancel()
		if err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
	sysd.Ready(log, "serving "+socket)
	sysd.Watchdog(ctx, log, healthy)
}
