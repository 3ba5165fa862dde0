package rdns

import (
	"context"
	"net/netip"
	"testing"

	"github.com/hostplane/hostplane/tests/framework"
)

// TestSyncOwnsAMappedZoneOfAnotherAccount: a mapped zone that PowerDNS holds
// under another account (made by hand, or by a release before zones carried
// the account) is given the client's account by Sync, so that a later full
// pass tells it as this cluster's (reconcile's dropUnmapped); its PTRs are
// synced as for any zone, and its kind is left as it was.
func TestSyncOwnsAMappedZoneOfAnotherAccount(t *testing.T) {
	p := framework.StartPowerDNS(t)
	ctx := context.Background()
	z := mustZone(t, "100.51.198.in-addr.arpa")
	byHand := &Client{BaseURL: p.APIURL, ServerID: "localhost", Key: p.APIKey, Account: "dns-team"}
	if err := byHand.CreateZone(ctx, z.FQDN(), []string{"ns1.example.test."}); err != nil {
		t.Fatal(err)
	}
	c := &Client{BaseURL: p.APIURL, ServerID: "localhost", Key: p.APIKey, Account: "cluster-a"}
	ip := netip.MustParseAddr("198.51.100.10")
	if _, err := c.Sync(ctx, Desired{Zone: z, PTRs: map[netip.Addr]string{ip: "vm10.example.test"}}, Options{Nameservers: []string{"ns1.example.test"}, TTL: 600}); err != nil {
		t.Fatal(err)
	}
	got, err := c.Zone(ctx, z.FQDN())
	if err != nil {
		t.Fatal(err)
	}
	if got.Account != "cluster-a" || got.Kind != "Native" {
		t.Errorf("zone %s after a sync of the client of account cluster-a: account %q, kind %q; want cluster-a, Native", z.Name, got.Account, got.Kind)
	}
	if ptr, rc := askPTR(t, p.DNSAddr, ip); ptr != "vm10.example.test." {
		t.Errorf("PTR %s = %q (rcode %d), want vm10.example.test.", ip, ptr, rc)
	}
	owned, err := c.OwnedZones(ctx)
	if err != nil || len(owned) != 1 || owned[0] != z.FQDN() {
		t.Errorf("zones of account cluster-a: %v, %v; want [%s]", owned, err, z.FQDN())
	}
	if owned, err := byHand.OwnedZones(ctx); err != nil || len(owned) != 0 {
		t.Errorf("zones of account dns-team after the sync: %v, %v; want none", owned, err)
	}
}
