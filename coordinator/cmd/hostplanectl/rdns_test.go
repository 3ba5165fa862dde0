package main

import (
	"context"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
)

// TestReverseZoneCLI maps, lists and unmaps reverse zones with `hostplanectl
// reverse-zone` against a real coordinator without PowerDNS (the PowerDNS
// side is tests/rdns): bad zones and pools are refused naming the field, and
// an unmapped zone goes (nothing to delete in PowerDNS).
func TestReverseZoneCLI(t *testing.T) {
	_, g, adm := cliCluster(t)
	run := func(args ...string) error { return execQuiet(newReverseZoneCmd(g), args...) }
	ctx := context.Background()
	list := func() []api.ReverseZone {
		t.Helper()
		zs, err := adm.ReverseZones(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return zs
	}

	if err := run("add", "100.51.198.IN-ADDR.ARPA."); err != nil {
		t.Fatal(err)
	}
	if err := run("add", "8.b.d.0.1.0.0.2.ip6.arpa"); err != nil {
		t.Fatal(err)
	}
	zs := list()
	if len(zs) != 2 || zs[0].Zone != "100.51.198.in-addr.arpa" || zs[0].Prefix != "198.51.100.0/24" ||
		zs[1].Zone != "8.b.d.0.1.0.0.2.ip6.arpa" || zs[1].Prefix != "2001:db8::/32" || zs[0].Status != api.PTRPending {
		t.Fatalf("zones: %+v", zs)
	}
	wantFieldRefusals(t, run, []fieldRefusal{
		{[]string{"add", "example.com"}, `"zone"`},
		{[]string{"add", "0/25.100.51.198.in-addr.arpa"}, `"zone"`},
		{[]string{"add", "51.198.in-addr.arpa", "--pool", "missing"}, `"pool"`},
		{[]string{"add", "51.198.in-addr.arpa", "--pool", "Bad_Pool"}, `"pool"`},
	})
	if err := run("add", "100.51.198.in-addr.arpa"); api.StatusOf(err) != 409 {
		t.Errorf("mapping twice: want 409, got %v", err)
	}
	if n := len(list()); n != 2 {
		t.Fatalf("%d zones after refused adds, want 2", n)
	}
	if err := run("remove", "8.b.d.0.1.0.0.2.ip6.arpa."); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(list()) != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("unmapped zone still listed: %+v", list())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := run("remove", "8.b.d.0.1.0.0.2.ip6.arpa"); api.StatusOf(err) != 404 {
		t.Errorf("removing an unknown zone: want 404, got %v", err)
	}
	if err := run("remove", "example.com"); api.StatusOf(err) != 400 {
		t.Errorf("removing a bad zone: want 400, got %v", err)
	}
}
