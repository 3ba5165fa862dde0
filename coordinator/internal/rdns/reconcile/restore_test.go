package reconcile

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/fsm/fsmtest"
	"github.com/hostplane/hostplane/coordinator/internal/ipam"
	"github.com/hostplane/hostplane/coordinator/internal/rdns"
	"github.com/hostplane/hostplane/coordinator/internal/store"
)

// TestRestoreStartsAFullPass: a `cluster restore` replaces the state
// PowerDNS followed, and a zone the backup holds as synced is served as the
// replaced state said (its PTRs, another history's) until a full pass: the
// reconciler makes one as soon as it sees the restore, not at its next
// Resync (an hour here), even when the restored state's rdns_changed index
// is the one it last covered.
func TestRestoreStartsAFullPass(t *testing.T) {
	rep := fsmtest.Open(t)
	f := rep.FSM
	now := time.Now().UTC()
	rep.MustAt(t, now, fsm.CmdClusterLevel, fsm.ClusterLevel{Level: fsm.LevelRestoreEpoch})
	rep.MustAt(t, now, fsm.CmdIPPoolCreate, fsm.IPPoolCreate{Pool: store.IPPool{Pool: ipam.Pool{Name: "v4", CIDR: "198.51.100.0/24", Gateway: "198.51.100.1", Bridge: "br0"}}})
	rep.MustAt(t, now, fsm.CmdReverseZoneAdd, fsm.ReverseZoneAdd{Zone: "100.51.198.in-addr.arpa", Pool: "v4"})
	var reads atomic.Int64 // GETs of the zone: one per zone a pass syncs
	client := fakePDNS(t, func() { reads.Add(1) })
	r := New(client, Config{Nameservers: []string{"ns1.example.test"}, Resync: time.Hour}, f, rep.Commit, NewMetrics(f), slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	synced := func() bool {
		var zs []store.ReverseZone
		_ = f.Read(func(rt store.ReadTx) (err error) { zs, err = rt.ReverseZones(); return })
		return len(zs) == 1 && !zs[0].Dirty()
	}
	waitFor(t, "the first pass synced the zone", synced)
	var buf bytes.Buffer
	if err := f.Backup(&buf); err != nil {
		t.Fatal(err)
	}
	// Idle: no change, no pass (Resync an hour away).
	time.Sleep(600 * time.Millisecond)
	before := reads.Load()
	if err := f.Restore(io.NopCloser(&buf)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a full pass after the restore", func() bool { return reads.Load() > before })
}

// fakePDNS is a PowerDNS API that holds the zone 100.51.198.in-addr.arpa,
// empty and of the client's account (hostplane), lists it, and takes every change;
// onZoneRead (nil: none) runs at each GET of the zone.
func fakePDNS(t *testing.T, onZoneRead func()) *rdns.Client {
	t.Helper()
	pdns := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/zones/") {
			if onZoneRead != nil {
				onZoneRead()
			}
			_, _ = w.Write([]byte(`{"name":"100.51.198.in-addr.arpa.","kind":"Native","account":"hostplane","rrsets":[]}`))
			return
		}
		if r.Method == http.MethodGet { // the zone list of a full pass
			_, _ = w.Write([]byte(`[{"name":"100.51.198.in-addr.arpa.","kind":"Native","account":"hostplane"}]`))
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(pdns.Close)
	return &rdns.Client{BaseURL: pdns.URL, ServerID: "localhost", Key: "k", HTTP: pdns.Client(), Account: "hostplane"}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("%s: not within 10 s", what)
}
