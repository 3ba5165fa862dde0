package reconcile

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/fsm/fsmtest"
	"github.com/hostplane/hostplane/coordinator/internal/ipam"
	"github.com/hostplane/hostplane/coordinator/internal/store"
)

// TestSyncedAtNotBeforeTheZoneWasMapped: a pass on a leader whose wall
// clock is 3 h behind the cluster's (the zone mapped at the cluster's time,
// by a leader whose clock was right) records the zone synced at the
// cluster's clock, not 3 h before it was mapped.
func TestSyncedAtNotBeforeTheZoneWasMapped(t *testing.T) {
	rep := fsmtest.Open(t)
	f, apply := rep.FSM, rep.Commit
	mapped := time.Now().UTC().Add(3 * time.Hour) // the cluster's time: this process's wall clock is 3 h behind it
	rep.MustAt(t, mapped, fsm.CmdIPPoolCreate, fsm.IPPoolCreate{Pool: store.IPPool{Pool: ipam.Pool{Name: "v4", CIDR: "198.51.100.0/24", Gateway: "198.51.100.1", Bridge: "br0"}}})
	rep.MustAt(t, mapped, fsm.CmdReverseZoneAdd, fsm.ReverseZoneAdd{Zone: "100.51.198.in-addr.arpa", Pool: "v4"})
	// PowerDNS: the zone exists, empty; every change is taken.
	client := fakePDNS(t, nil)
	cluster := func() time.Time { return mapped.Add(time.Second) } // the API's clock: past what was applied
	r := New(client, Config{Nameservers: []string{"ns1.example.test"}, Now: cluster}, f, apply, NewMetrics(f), slog.New(slog.DiscardHandler))
	if _, err := r.pass(context.Background(), true); err != nil {
		t.Fatalf("pass: %v", err)
	}
	var zs []store.ReverseZone
	_ = f.Read(func(rt store.ReadTx) (err error) { zs, err = rt.ReverseZones(); return })
	if len(zs) != 1 || zs[0].SyncedAt == nil {
		t.Fatalf("zones after the pass: %+v, want one synced", zs)
	}
	if z := zs[0]; z.SyncedAt.Before(z.CreatedAt) || !z.SyncedAt.Equal(cluster()) {
		t.Fatalf("zone mapped at %s, synced at %s; want synced at the cluster's %s", z.CreatedAt, z.SyncedAt, cluster())
	}
}
