package main

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/hostplane/hostplane/pkg/api"
)

// TestIPPoolCLI drives `hostplanectl ip-pool` against a real coordinator:
// refused definitions name the field and change nothing; reserve, release,
// show and remove act on the pool.
func TestIPPoolCLI(t *testing.T) {
	run := func(g *globals, args ...string) error { return execQuiet(newIPPoolCmd(g), args...) }
	wantUsageErrors(t, func(args ...string) error { return run(&globals{}, args...) },
		[]string{"create", "p", "--gateway", "198.51.100.1"},
		[]string{"create", "p", "--cidr", "198.51.100.0/24"},
		[]string{"create", "p", "--cidr", "198.51.100.0/24", "--gateway", "198.51.100.1", "--quarantine", "-1s"},
	)
	_, g, adm := cliCluster(t)
	ctx := context.Background()

	if err := run(g, "create", "pub4", "--cidr", "198.51.100.0/24", "--gateway", "198.51.100.1", "--exclude", "198.51.100.250/31",
		"--nodes", "hv-01,hv-02", "--bridge", "br-pub", "--resolver", "198.51.100.53", "--quarantine", "1h"); err != nil {
		t.Fatal(err)
	}
	if err := run(g, "create", "pub6", "--cidr", "2001:db8::/48", "--gateway", "fe80::1", "--prefix-len", "56"); err != nil {
		t.Fatal(err)
	}
	var ae *api.Error
	wantFieldRefusals(t, func(args ...string) error { return run(g, args...) }, []fieldRefusal{
		{[]string{"create", "bad", "--cidr", "198.51.100.0/33", "--gateway", "198.51.100.1"}, `"cidr"`},
		{[]string{"create", "bad", "--cidr", "203.0.113.0/24", "--gateway", "198.51.100.1"}, `"gateway"`},
		{[]string{"create", "bad", "--cidr", "198.51.100.0/25", "--gateway", "198.51.100.1"}, `"cidr"`},
		{[]string{"create", "bad", "--cidr", "203.0.113.0/24", "--gateway", "203.0.113.1", "--exclude", "10.0.0.1"}, `"exclude[0]"`},
		{[]string{"create", "bad", "--cidr", "2001:db9::/48", "--gateway", "fe80::1", "--prefix-len", "32"}, `"prefix_len"`},
		{[]string{"create", "bad", "--cidr", "203.0.113.0/24", "--gateway", "203.0.113.1", "--bridge", "no such bridge"}, `"bridge"`},
	})
	if err := run(g, "create", "bad", "--cidr", "198.51.100.0/25", "--gateway", "198.51.100.1"); err == nil || !strings.Contains(err.Error(), `overlaps pool "pub4"`) {
		t.Fatalf("overlap names the pool: %v", err)
	}
	pools, err := adm.IPPools(ctx)
	if err != nil || len(pools) != 2 || pools[0].Name != "pub4" || pools[1].Name != "pub6" {
		t.Fatalf("pools after refusals: %+v %v", pools, err)
	}
	p4 := pools[0]
	if p4.Usage.Total != 251 || p4.Usage.Free != 251 || p4.QuarantineSeconds != 3600 || p4.Bridge != "br-pub" || len(p4.Nodes) != 2 || p4.Version != 4 {
		t.Fatalf("pub4: %+v", p4)
	}
	if p6 := pools[1]; p6.Version != 6 || p6.PrefixLen != 56 || p6.Usage.Total != 256 || p6.QuarantineSeconds != 86400 {
		t.Fatalf("pub6: %+v", p6)
	}

	if err := run(g, "reserve", "pub4", "198.51.100.7", "--note", "router"); err != nil {
		t.Fatal(err)
	}
	if err := run(g, "reserve", "pub4", "198.51.100.7"); api.StatusOf(err) != 409 {
		t.Fatalf("reserving twice: want 409, got %v", err)
	}
	if err := run(g, "reserve", "pub4", "203.0.113.7"); !errors.As(err, &ae) || ae.StatusCode != 400 || !strings.Contains(ae.Message, `"ip"`) {
		t.Fatalf("reserving outside the pool: want 400 naming ip, got %v", err)
	}
	d, err := adm.IPPool(ctx, "pub4")
	if err != nil || d.Usage.Used != 1 || d.Usage.Reserved != 1 || len(d.Addresses) != 1 || d.Addresses[0].Prefix != "198.51.100.7/32" ||
		d.Addresses[0].Status != api.IPReserved || d.Addresses[0].Note != "router" {
		t.Fatalf("show after reserve: %+v %v", d, err)
	}
	if err := run(g, "remove", "pub4"); api.StatusOf(err) != 409 {
		t.Fatalf("removing a pool with a reservation: want 409, got %v", err)
	}
	if err := run(g, "release", "pub4", "198.51.100.7"); err != nil {
		t.Fatal(err)
	}
	if err := run(g, "remove", "pub4"); err != nil {
		t.Fatal(err)
	}
	if err := run(g, "show", "pub4"); api.StatusOf(err) != 404 {
		t.Fatalf("show of a removed pool: want 404, got %v", err)
	}
}
