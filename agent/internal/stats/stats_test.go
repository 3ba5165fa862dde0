package stats

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/hostplane/hostplane/agent/internal/hypervisor"
)

type fakeSource struct {
	s   []hypervisor.DomainStats
	err error // libvirt cannot be asked
}

func (f *fakeSource) AllDomainStats(context.Context) ([]hypervisor.DomainStats, error) {
	return f.s, f.err
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

// TestLiveSamples: a live sample has the counters of the moment it is asked
// for, not the last cycle's (up to --stats-interval, 10 s by default, old: a
// stats stream at ?interval=1 sent the same sample ten times); its rates cover
// the time since the caller's previous live sample, or on a first call since
// the last cycle. Asked within minRateWindow of the cycle, it is the cycle's
// sample; a VM defined since the cycle is answered at once; without libvirt
// the last sample is answered; nothing is added to the ring.
func TestLiveSamples(t *testing.T) {
	t0 := time.Unix(1000, 0)
	now := t0
	src := &fakeSource{s: []hypervisor.DomainStats{{Name: "a", State: hypervisor.StateRunning, CPUTimeNs: 1e9, NetRxBytes: 100}}}
	c := New(src, t.TempDir(), 10, slog.New(slog.DiscardHandler), func() time.Time { return now })
	ctx := context.Background()
	if err := c.Cycle(ctx); err != nil {
		t.Fatal(err)
	}
	var m Mark
	now = t0.Add(100 * time.Millisecond)
	src.s[0].CPUTimeNs = 2e9
	if s, ok := c.Live(ctx, "a", &m); !ok || !s.Time.Equal(t0) || s.CPUTimeNs != 1e9 {
		t.Fatalf("within the rate window of the cycle: %+v %v, want the cycle's sample", s, ok)
	}
	// 2 s after the cycle: 1 s of CPU (50 %), 1000 bytes received (500/s).
	now = t0.Add(2 * time.Second)
	src.s[0].NetRxBytes = 1100
	s, ok := c.Live(ctx, "a", &m)
	if !ok || !s.Time.Equal(now) || s.CPUTimeNs != 2e9 || s.CPUPercent != 50 || s.NetRxBps != 500 || s.State != "running" {
		t.Fatalf("first live sample: %+v %v", s, ok)
	}
	// One second on: the rates cover that second (25 %), not the 3 s since the cycle.
	now = now.Add(time.Second)
	src.s[0].CPUTimeNs = 2.25e9
	if s, ok = c.Live(ctx, "a", &m); !ok || !s.Time.Equal(now) || s.CPUPercent != 25 || s.NetRxBps != 0 {
		t.Fatalf("second live sample: %+v %v", s, ok)
	}
	if r := c.Snapshot("a").VMs["a"]; len(r) != 1 || !r[0].Time.Equal(t0) {
		t.Fatalf("live samples went into the ring: %+v", r)
	}
	// libvirt unreachable: a first call gets the last cycle's sample; a
	// stream that was answered a live sample since gets that one again, not
	// the older cycle's (its samples never go back in time, nor its
	// counters down).
	src.err = errors.New("libvirt down")
	if s, ok = c.Live(ctx, "a", &Mark{}); !ok || !s.Time.Equal(t0) {
		t.Fatalf("without libvirt, a first call: %+v %v", s, ok)
	}
	sent := now
	now = now.Add(time.Second)
	if s, ok = c.Live(ctx, "a", &m); !ok || !s.Time.Equal(sent) || s.CPUTimeNs != 2.25e9 {
		t.Fatalf("without libvirt, a stream answered at %s before: %+v %v, want that sample again", sent.Format(time.StampMilli), s, ok)
	}
	src.err = nil
	// libvirt back: the rates cover the time since the last live sample.
	now = now.Add(time.Second)
	src.s[0].CPUTimeNs = 2.75e9
	if s, ok = c.Live(ctx, "a", &m); !ok || !s.Time.Equal(now) || s.CPUPercent != 25 {
		t.Fatalf("libvirt back: %+v %v, want 25 %% over the 2 s since the last live sample", s, ok)
	}
	// A VM defined since the cycle: answered at once (recorded, as Current does).
	src.s = append(src.s, hypervisor.DomainStats{Name: "b", State: hypervisor.StateRunning, CPUTimeNs: 5})
	var mb Mark
	if s, ok = c.Live(ctx, "b", &mb); !ok || s.CPUTimeNs != 5 || !s.Time.Equal(now) {
		t.Fatalf("new vm: %+v %v", s, ok)
	}
	if _, ok = c.Live(ctx, "nosuch", &Mark{}); ok {
		t.Fatal("a vm libvirt does not have was answered")
	}
}
