package reconcile

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/fsm/fsmtest"
	"github.com/hostplane/hostplane/coordinator/internal/ipam"
	"github.com/hostplane/hostplane/coordinator/internal/rdns"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/tests/framework"
)

// TestFullPassKeepsAnotherClustersZones (review55's repro): two hostplane
// clusters drive one real PowerDNS, each with its own account
// (--pdns-account) and its own reverse zone. A full pass of one (every
// --pdns-resync-interval, each new leader, each restore) leaves the other's
// zone alone, though this cluster does not map it; a zone of its own
// account that it no longer maps goes. With one account for every cluster
// (cdfe74a) the other cluster's zone was deleted: "zone
// 113.0.203.in-addr.arpa. is gone from PowerDNS after the other cluster's
// full pass".
func TestFullPassKeepsAnotherClustersZones(t *testing.T) {
	p := framework.StartPowerDNS(t)
	ctx := context.Background()
	now := time.Now().UTC()
	a, _ := clusterOver(t, p, now, "brand-a", "a4", "198.51.100.0/24", "198.51.100.1", "100.51.198.in-addr.arpa")
	b, _ := clusterOver(t, p, now, "brand-b", "b4", "203.0.113.0/24", "203.0.113.1", "113.0.203.in-addr.arpa")
	if _, err := b.pass(ctx, true); err != nil {
		t.Fatalf("cluster B's pass: %v", err)
	}
	if _, err := a.pass(ctx, true); err != nil {
		t.Fatalf("cluster A's pass: %v", err)
	}
	c := &rdns.Client{BaseURL: p.APIURL, ServerID: "localhost", Key: p.APIKey}
	for _, z := range []string{"100.51.198.in-addr.arpa.", "113.0.203.in-addr.arpa."} {
		if _, err := c.Zone(ctx, z); errors.Is(err, rdns.ErrNoZone) {
			t.Errorf("zone %s is gone from PowerDNS after the other cluster's full pass", z)
		} else if err != nil {
			t.Fatal(err)
		}
	}
	// A's state, replaced by one that maps nothing (as after a restore): its
	// full pass deletes its own zone, and still not B's.
	a2, _ := clusterOver(t, p, now, "brand-a", "a4", "198.51.100.0/24", "198.51.100.1")
	if _, err := a2.pass(ctx, true); err != nil {
		t.Fatalf("cluster A's pass over a state without zones: %v", err)
	}
	if _, err := c.Zone(ctx, "100.51.198.in-addr.arpa."); !errors.Is(err, rdns.ErrNoZone) {
		t.Errorf("cluster A's unmapped zone is still in PowerDNS after its full pass (%v)", err)
	}
	if _, err := c.Zone(ctx, "113.0.203.in-addr.arpa."); err != nil {
		t.Errorf("cluster B's zone after cluster A's pass: %v", err)
	}
}

// TestFullPassWithoutAccountDeletesNothing: clusters left at the default
// (--pdns-account empty) that share one PowerDNS, as they could before
// zones carried accounts. A full pass over a state that maps nothing (as
// after a restore) deletes no zone: neither the other cluster's nor the one
// its replaced state mapped (which only an account of its own tells apart),
// and the zones it creates carry no account.
func TestFullPassWithoutAccountDeletesNothing(t *testing.T) {
	p := framework.StartPowerDNS(t)
	ctx := context.Background()
	now := time.Now().UTC()
	cluster := func(pool, cidr, gw string, zones ...string) *Reconciler {
		r, _ := clusterOver(t, p, now, "", pool, cidr, gw, zones...) // no account: the default
		return r
	}
	for _, r := range []*Reconciler{
		cluster("a4", "198.51.100.0/24", "198.51.100.1", "100.51.198.in-addr.arpa"),
		cluster("b4", "203.0.113.0/24", "203.0.113.1", "113.0.203.in-addr.arpa"),
		cluster("a4", "198.51.100.0/24", "198.51.100.1"), // A's state replaced by one that maps nothing
	} {
		if _, err := r.pass(ctx, true); err != nil {
			t.Fatalf("full pass: %v", err)
		}
	}
	c := &rdns.Client{BaseURL: p.APIURL, ServerID: "localhost", Key: p.APIKey}
	for _, z := range []string{"100.51.198.in-addr.arpa.", "113.0.203.in-addr.arpa."} {
		got, err := c.Zone(ctx, z)
		if errors.Is(err, rdns.ErrNoZone) {
			t.Errorf("zone %s is gone from PowerDNS after a full pass without an account", z)
		} else if err != nil {
			t.Fatal(err)
		} else if got.Account != "" {
			t.Errorf("zone %s made without an account carries account %q", z, got.Account)
		}
	}
}

// clusterOver is one cluster's reconciler of PowerDNS p with the PowerDNS
// account account ("": none), over a state at level 11 holding the IP pool
// pool (cidr, gateway gw) and the reverse zones zones mapped to it.
func clusterOver(t *testing.T, p *framework.PowerDNS, now time.Time, account, pool, cidr, gw string, zones ...string) (*Reconciler, *fsmtest.Replica) {
	t.Helper()
	rep := fsmtest.Open(t)
	rep.MustAt(t, now, fsm.CmdClusterLevel, fsm.ClusterLevel{Level: fsm.LevelRestoreEpoch})
	rep.MustAt(t, now, fsm.CmdIPPoolCreate, fsm.IPPoolCreate{Pool: store.IPPool{Pool: ipam.Pool{Name: pool, CIDR: cidr, Gateway: gw, Bridge: "br0"}}})
	for _, z := range zones {
		rep.MustAt(t, now, fsm.CmdReverseZoneAdd, fsm.ReverseZoneAdd{Zone: z, Pool: pool})
	}
	client := &rdns.Client{BaseURL: p.APIURL, ServerID: "localhost", Key: p.APIKey, Account: account}
	return New(client, Config{Nameservers: []string{"ns1.example.test"}, Resync: time.Hour}, rep.FSM, rep.Commit, NewMetrics(rep.FSM), slog.New(slog.DiscardHandler)), rep
}
