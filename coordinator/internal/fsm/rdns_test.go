package fsm

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
	bolt "go.etcd.io/bbolt"
)

// TestReverseZones maps, refuses, syncs and removes reverse zones, and shows
// what an address's view says about its PTR at each step.
func TestReverseZones(t *testing.T) {
	h := newServerHarness(t)
	runningServer(h, "198.51.100.7/24")
	ip := netip.MustParseAddr("198.51.100.7")

	read := func() (s store.Server, zs []store.ReverseZone, changed, applied uint64) {
		_ = h.fsms[1].View(func(tx *bolt.Tx) (err error) {
			r := store.Read(tx)
			if s, err = r.Server("srv_1"); err != nil {
				return err
			}
			zs, err = r.ReverseZones()
			changed, applied = r.RDNSChanged(), r.AppliedIndex()
			return err
		})
		return
	}
	view := func() api.ServerIP {
		s, zs, _, _ := read()
		return WithReverseDNS(ServerIPView(s, ip), s, ip, zs)
	}
	wantView := func(hosted bool, sync string) {
		t.Helper()
		if v := view(); v.ZoneHosted != hosted || v.PTRSync != sync {
			t.Fatalf("view %+v, want zoneHosted %v ptrSync %s", v, hosted, sync)
		}
	}
	ptr := func(name string) api.ServerIP {
		t.Helper()
		return h.must(CmdServerPTR, ServerPTR{AccountID: "acc_1", ServerID: "srv_1", IP: ip.String(), Hostname: name}).(api.ServerIP)
	}
	synced := func(zone string) {
		t.Helper()
		_, _, _, applied := read()
		h.must(CmdReverseZoneSynced, ReverseZoneSynced{Zones: []ZoneSyncResult{{Zone: zone, Index: applied}}})
	}

	// No zone: the name is recorded only.
	if v := ptr("mail.example.test"); v.ZoneHosted || v.PTRSync != api.PTRNotHosted {
		t.Fatalf("PUT answer without a zone: %+v", v)
	}
	wantView(false, api.PTRNotHosted)

	// Bad zones and pool names are refused; nothing is stored.
	for _, p := range []ReverseZoneAdd{
		{Zone: "example.com"}, {Zone: "100.51.198.in-addr.arpa."}, {Zone: "100.51.198.IN-ADDR.ARPA"}, {Zone: "1.2.3.4.in-addr.arpa"},
		{Zone: "51.198.in-addr.arpa", Pool: "Bad Pool"},
	} {
		if _, err := h.apply(CmdReverseZoneAdd, p); !errors.Is(err, ErrInvalid) {
			t.Errorf("add %+v: %v, want ErrInvalid", p, err)
		}
	}
	if _, zs, _, _ := read(); len(zs) != 0 {
		t.Fatalf("refused zones stored: %+v", zs)
	}

	// The linked pool must exist and share addresses with the zone.
	if _, err := h.apply(CmdReverseZoneAdd, ReverseZoneAdd{Zone: "51.198.in-addr.arpa", Pool: "v4-main"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("zone linked to a missing pool: %v", err)
	}
	h.must(CmdIPPoolCreate, IPPoolCreate{Pool: pool4("v4-main", "198.51.100.0/24", "198.51.100.1")})
	h.must(CmdIPPoolCreate, IPPoolCreate{Pool: pool4("other", "203.0.113.0/24", "203.0.113.1")})
	if _, err := h.apply(CmdReverseZoneAdd, ReverseZoneAdd{Zone: "51.198.in-addr.arpa", Pool: "other"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("zone linked to a pool outside it: %v", err)
	}

	// A /16 zone hosts the address; pending until the reconciler records a pass.
	z16 := h.must(CmdReverseZoneAdd, ReverseZoneAdd{Zone: "51.198.in-addr.arpa", Pool: "v4-main"}).(api.ReverseZone)
	if _, err := h.apply(CmdIPPoolRemove, IPPoolRemove{Name: "v4-main"}); !errors.Is(err, ErrConflict) {
		t.Fatalf("removing a pool a zone is linked to: %v, want ErrConflict", err)
	}
	if z16.Prefix != "198.51.0.0/16" || z16.Status != api.PTRPending || z16.Pool != "v4-main" {
		t.Fatalf("added zone: %+v", z16)
	}
	if _, err := h.apply(CmdReverseZoneAdd, ReverseZoneAdd{Zone: "51.198.in-addr.arpa"}); !errors.Is(err, ErrConflict) {
		t.Fatalf("mapping twice: %v", err)
	}
	wantView(true, api.PTRPending)
	synced("51.198.in-addr.arpa")
	wantView(true, api.PTRSynced)

	// A PTR change is pending until the next pass; an error keeps it pending
	// and is shown on the zone; the pass after clears it.
	if v := ptr("smtp.example.test"); !v.ZoneHosted || v.PTRSync != api.PTRPending {
		t.Fatalf("PUT answer in a hosted zone: %+v", v)
	}
	h.must(CmdReverseZoneSynced, ReverseZoneSynced{Zones: []ZoneSyncResult{{Zone: "51.198.in-addr.arpa", Error: "powerdns down"}}})
	wantView(true, api.PTRPending)
	_, zs, _, _ := read()
	if v := ReverseZoneView(zs[0]); v.Status != api.PTRPending || v.LastError != "powerdns down" {
		t.Fatalf("zone after a failed pass: %+v", v)
	}
	synced("51.198.in-addr.arpa")
	wantView(true, api.PTRSynced)
	_, zs, _, _ = read()
	if v := ReverseZoneView(zs[0]); v.Status != api.PTRSynced || v.LastError != "" || v.SyncedAt == nil {
		t.Fatalf("zone after a good pass: %+v", v)
	}
	// A synced index from the future is refused.
	_, _, _, applied := read()
	if _, err := h.apply(CmdReverseZoneSynced, ReverseZoneSynced{Zones: []ZoneSyncResult{{Zone: "51.198.in-addr.arpa", Index: applied + 5}}}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("future index: %v", err)
	}

	// A longer zone takes the address over (longest match): pending again.
	// The /16 loses the address, so it has to be synced too; a zone of
	// another range does not touch it.
	zoneStatus := func(name string) string {
		t.Helper()
		_, zs, _, _ := read()
		for _, z := range zs {
			if z.Zone == name {
				return ReverseZoneView(z).Status
			}
		}
		t.Fatalf("no zone %s", name)
		return ""
	}
	h.must(CmdReverseZoneAdd, ReverseZoneAdd{Zone: "100.51.198.in-addr.arpa"})
	wantView(true, api.PTRPending)
	synced("100.51.198.in-addr.arpa")
	wantView(true, api.PTRSynced)
	if st := zoneStatus("51.198.in-addr.arpa"); st != api.PTRPending {
		t.Fatalf("the /16 after a /24 was mapped inside it: %s, want pending", st)
	}
	synced("51.198.in-addr.arpa")
	h.must(CmdReverseZoneAdd, ReverseZoneAdd{Zone: "8.b.d.0.1.0.0.2.ip6.arpa"})
	if a, b := zoneStatus("51.198.in-addr.arpa"), zoneStatus("100.51.198.in-addr.arpa"); a != api.PTRSynced || b != api.PTRSynced {
		t.Fatalf("an IPv6 zone made the IPv4 zones %s, %s; want synced", a, b)
	}
	// A PTR change marks only the zone hosting the address.
	ptr("mx.example.test")
	if a, b := zoneStatus("51.198.in-addr.arpa"), zoneStatus("100.51.198.in-addr.arpa"); a != api.PTRSynced || b != api.PTRPending {
		t.Fatalf("after a PTR change in the /24: /16 %s, /24 %s; want synced, pending", a, b)
	}
	synced("100.51.198.in-addr.arpa")
	wantView(true, api.PTRSynced)

	// Removing it: marked removing, the /16 hosts the address again; once
	// deleted from PowerDNS the entry goes. A deletion of a zone mapped again
	// in between is ignored.
	rm := h.must(CmdReverseZoneRemove, ReverseZoneRemove{Zone: "100.51.198.in-addr.arpa"}).(api.ReverseZone)
	if rm.Status != api.ZoneRemoving {
		t.Fatalf("removed zone: %+v", rm)
	}
	// The /16 hosts the address again: pending until it is synced.
	wantView(true, api.PTRPending)
	synced("51.198.in-addr.arpa")
	wantView(true, api.PTRSynced)
	if _, err := h.apply(CmdReverseZoneRemove, ReverseZoneRemove{Zone: "1.in-addr.arpa"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("removing an unknown zone: %v", err)
	}
	if v := view(); !v.ZoneHosted {
		t.Fatalf("the /16 no longer hosts the address: %+v", v)
	}
	h.must(CmdReverseZoneAdd, ReverseZoneAdd{Zone: "100.51.198.in-addr.arpa"})
	h.must(CmdReverseZoneSynced, ReverseZoneSynced{Zones: []ZoneSyncResult{{Zone: "100.51.198.in-addr.arpa", Deleted: true}}})
	if _, zs, _, _ := read(); len(zs) != 3 {
		t.Fatalf("a zone mapped again was dropped: %+v", zs)
	}
	h.must(CmdReverseZoneRemove, ReverseZoneRemove{Zone: "100.51.198.in-addr.arpa"})
	h.must(CmdReverseZoneSynced, ReverseZoneSynced{Zones: []ZoneSyncResult{{Zone: "100.51.198.in-addr.arpa", Deleted: true}}})
	if _, zs, _, _ := read(); len(zs) != 2 || zs[0].Zone != "51.198.in-addr.arpa" {
		t.Fatalf("zones after deletion: %+v", zs)
	}

	// Terminating the server drops its PTRs and marks reverse DNS changed.
	_, _, before, _ := read()
	term := store.Action{Action: api.Action{ID: "act_t", Command: api.ActionServerTerminate, ResourceID: "srv_1"},
		AccountID: "acc_1", NodeID: "hv-1", Target: "hp-srv-1", Mutating: true, Deadline: h.at.Add(time.Hour)}
	h.must(CmdActionCreate, ActionCreate{Action: term})
	h.must(CmdActionFinish, ActionFinish{ID: "act_t", Success: true})
	s, _, after, _ := read()
	if s.PTRs != nil || s.PTRAt != nil || after <= before {
		t.Fatalf("after terminate: ptrs %v at %v, changed %d → %d", s.PTRs, s.PTRAt, before, after)
	}
}
