package stats

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/hostplane/hostplane/agent/internal/hypervisor"
)

type fakeSource struct{ s []hypervisor.DomainStats }

func (f *fakeSource) AllDomainStats(context.Context) ([]hypervisor.DomainStats, error) {
	return f.s, nil
}

func TestRatesAndRing(t *testing.T) {
	now := time.Unix(1000, 0)
	src := &fakeSource{}
	c := New(src, t.TempDir(), 3, slog.New(slog.DiscardHandler), func() time.Time { return now })
	for i := range 5 {
		src.s = []hypervisor.DomainStats{{Name: "a", State: hypervisor.StateRunning, CPUTimeNs: uint64(i) * 5e8,
			DiskReadBytes: uint64(i) * 1000, NetTxBytes: uint64(i) * 10}}
		if i == 4 {
			src.s[0].NetTxBytes = 0 // counter reset (QEMU restarted)
		}
		if err := c.Cycle(context.Background()); err != nil {
			t.Fatal(err)
		}
		now = now.Add(time.Second)
	}
	r := c.Snapshot("a").VMs["a"]
	if len(r) != 3 {
		t.Fatalf("ring length %d", len(r))
	}
	if r[0].CPUPercent != 50 || r[1].DiskReadBps != 1000 || r[2].NetTxBps != 0 || !r[0].Time.Before(r[2].Time) {
		t.Fatalf("samples %+v", r)
	}
	src.s = nil
	_ = c.Cycle(context.Background())
	if len(c.Snapshot("").VMs) != 0 {
		t.Fatal("gone domain kept")
	}
}

// TestCurrentShowsAStoppedVMAtOnce: between two cycles the VM stops; the next
// answer says shutoff, not the last cycle's "running". While nothing changed,
// an answer adds no sample.
func TestCurrentShowsAStoppedVMAtOnce(t *testing.T) {
	now := time.Unix(1000, 0)
	src := &fakeSource{s: []hypervisor.DomainStats{{Name: "a", State: hypervisor.StateRunning, CPUTimeNs: 1e9}}}
	c := New(src, t.TempDir(), 10, slog.New(slog.DiscardHandler), func() time.Time { return now })
	ctx := context.Background()
	if err := c.Cycle(ctx); err != nil {
		t.Fatal(err)
	}
	now = now.Add(100 * time.Millisecond)
	if r := c.Current(ctx, "a").VMs["a"]; len(r) != 1 || r[0].State != "running" {
		t.Fatalf("unchanged: %+v", r)
	}
	src.s = []hypervisor.DomainStats{{Name: "a", State: hypervisor.StateShutoff}}
	now = now.Add(100 * time.Millisecond)
	if r := c.Snapshot("a").VMs["a"]; r[len(r)-1].State != "running" {
		t.Fatalf("the sampled ring changed without a cycle: %+v", r)
	}
	r := c.Current(ctx, "a").VMs["a"]
	if len(r) != 2 || r[1].State != "shutoff" || !r[1].Time.Equal(now) {
		t.Fatalf("after the stop: %+v", r)
	}
	src.s = nil // undefined
	if all := c.Current(ctx, ""); len(all.VMs) != 0 {
		t.Fatalf("vanished domain still answered: %+v", all.VMs)
	}
}
