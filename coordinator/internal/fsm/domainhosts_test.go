package fsm

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
)

var updateDomainHostGolden = flag.Bool("update-domain-host-golden", false, "rewrite testdata/domainhost_level16.golden")

// hostHarness is a level-16 cluster with acc_1's a.test registered and
// b.test of acc_2.
func hostHarness(t *testing.T, level uint16) *whHarness {
	h := newServerHarness(t)
	h.must(CmdClusterLevel, ClusterLevel{Level: level})
	h.putDomainTest()
	h.must(CmdWalletCredit, WalletCredit{TxID: "wtx_dep", AccountID: "acc_1", AmountUsdCents: 5000})
	h.must(CmdWalletCredit, WalletCredit{TxID: "wtx_dep2", AccountID: "acc_2", AmountUsdCents: 5000})
	exp := h.at.AddDate(1, 0, 0)
	h.must(CmdDomainOrder, testDomainOrder("dom_1", "a.test", 1))
	h.must(CmdDomainOpDone, DomainOpDone{DomainID: "dom_1", OpID: "dom_1", OK: true, Expires: &exp})
	o := testDomainOrder("dom_2", "b.test", 1)
	o.AccountID = "acc_2"
	h.must(CmdDomainOrder, o)
	h.must(CmdDomainOpDone, DomainOpDone{DomainID: "dom_2", OpID: "dom_2", OK: true, Expires: &exp})
	return h
}

func hostCmd(op, name string, addrs ...string) DomainHost {
	return DomainHost{DomainID: "dom_1", AccountID: "acc_1", OpID: op, ClTRID: op, Name: name, Addresses: addrs}
}

// TestDomainHostNeedsLevel16: below level 16 a child name server's command
// is refused (cluster_upgrading) on every replica and changes nothing.
func TestDomainHostNeedsLevel16(t *testing.T) {
	h := hostHarness(t, LevelDomainHosts-1)
	before := bucketDump(h.fsms[0], store.BucketRegDomains, store.BucketRegDomainOps)
	var le *LevelError
	if _, err := h.apply(CmdDomainHost, hostCmd("dho_1", "ns1.a.test", "8.8.8.8")); !errors.As(err, &le) || le.Need != LevelDomainHosts {
		t.Fatalf("a host command at level %d: %v", LevelDomainHosts-1, err)
	}
	if after := bucketDump(h.fsms[0], store.BucketRegDomains, store.BucketRegDomainOps); !bytes.Equal(before, after) {
		t.Fatalf("a refused host command changed the domains:\n%s\nwas:\n%s", after, before)
	}
	h.replicasSame(domainAnswerDump)
}

// TestDomainHostLifecycle: from level 16 a child name server is a registry
// operation like a change: pending while open (another is 409), kept on
// the domain when the registry took it, dropped with the reason when not;
// the same addresses again open nothing; a delete removes it. Bad input is
// ErrInvalid naming the field, another account's domain ErrNotFound, and
// nothing is written.
func TestDomainHostLifecycle(t *testing.T) {
	h := hostHarness(t, LevelDomainHosts)
	before := bucketDump(h.fsms[0], store.BucketRegDomains, store.BucketRegDomainOps)
	for _, c := range []struct {
		p     DomainHost
		is    error
		field string
	}{
		{hostCmd("dho_x", "ns1.b.test", "8.8.8.8"), ErrInvalid, `"name"`},
		{hostCmd("dho_x", "a.test", "8.8.8.8"), ErrInvalid, `"name"`},
		{hostCmd("dho_x", "ns1.xa.test", "8.8.8.8"), ErrInvalid, `"name"`},
		{hostCmd("dho_x", "ns1.a.test"), ErrInvalid, `"addresses"`},
		{hostCmd("dho_x", "ns1.a.test", "8.8.8.8", "ns1.b.test"), ErrInvalid, `"addresses[1]"`},
		{hostCmd("dho_x", "ns1.a.test", "fe80::1%eth0"), ErrInvalid, `"addresses[0]"`},
		{hostCmd("dho_x", "ns1.a.test", "::ffff:8.8.8.8"), ErrInvalid, `"addresses"`}, // not canonical form
		{hostCmd("dho_x", "ns1.a.test", "8.8.8.8", "8.8.8.8"), ErrInvalid, `"addresses[1]"`},
		{hostCmd("dho_x", "ns1.a.test", "2606:4700::1", "8.8.8.8"), ErrInvalid, `"addresses"`}, // not canonical order
		{hostCmd("dho_x", "ns1.a.test", "1.1.1.1", "1.1.1.2", "1.1.1.3", "1.1.1.4", "1.1.1.5", "1.1.1.6", "1.1.1.7", "1.1.1.8", "1.1.1.9"), ErrInvalid, `"addresses"`},
		{DomainHost{DomainID: "dom_1", AccountID: "acc_1", OpID: "dho_x", ClTRID: "dho_x", Name: "ns1.a.test", Delete: true}, ErrNotFound, ""},
		{DomainHost{DomainID: "dom_2", AccountID: "acc_1", OpID: "dho_x", ClTRID: "dho_x", Name: "ns1.b.test", Addresses: []string{"8.8.8.8"}}, ErrNotFound, ""},
	} {
		_, err := h.apply(CmdDomainHost, c.p)
		if !errors.Is(err, c.is) || !strings.Contains(fmt.Sprint(err), c.field) {
			t.Errorf("%+v: %v, want %v naming %s", c.p, err, c.is, c.field)
		}
	}
	if after := bucketDump(h.fsms[0], store.BucketRegDomains, store.BucketRegDomainOps); !bytes.Equal(before, after) {
		t.Fatalf("refused host commands changed the domains")
	}

	h.must(CmdDomainHost, hostCmd("dho_1", "ns1.a.test", "8.8.8.8", "2606:4700::1"))
	d := getRegDomain(t, h.fsms[0], "dom_1")
	if d.Op == nil || d.Op.Kind != store.RegOpHost || d.Change == nil || d.Change.Status != api.ChangePending || d.Change.Host == nil ||
		d.Change.Host.Name != "ns1.a.test" || len(d.Hosts) != 0 || openOps(t, h.fsms[0]) != 1 {
		t.Fatalf("after the host command: op %+v change %+v hosts %v", d.Op, d.Change, d.Hosts)
	}
	if _, err := h.apply(CmdDomainHost, hostCmd("dho_2", "ns2.a.test", "8.8.4.4")); !errors.Is(err, ErrConflict) {
		t.Fatalf("a second host operation while one is open: %v", err)
	}
	h.must(CmdDomainOpDone, DomainOpDone{DomainID: "dom_1", OpID: "dho_1", OK: true})
	d = getRegDomain(t, h.fsms[0], "dom_1")
	if d.Op != nil || d.Change.Status != api.ChangeApplied || !slices.EqualFunc(d.Hosts, []api.DomainHost{{Name: "ns1.a.test", Addresses: []string{"8.8.8.8", "2606:4700::1"}}},
		func(a, b api.DomainHost) bool { return a.Name == b.Name && slices.Equal(a.Addresses, b.Addresses) }) {
		t.Fatalf("after the end: op %+v change %+v hosts %+v", d.Op, d.Change, d.Hosts)
	}
	// The same addresses again: nothing to ask the registry.
	h.must(CmdDomainHost, hostCmd("dho_3", "ns1.a.test", "8.8.8.8", "2606:4700::1"))
	if d := getRegDomain(t, h.fsms[0], "dom_1"); d.Op != nil {
		t.Fatalf("the same addresses opened %+v", d.Op)
	}
	// A refused change keeps the old addresses.
	h.must(CmdDomainHost, hostCmd("dho_4", "ns1.a.test", "9.9.9.9"))
	h.must(CmdDomainOpDone, DomainOpDone{DomainID: "dom_1", OpID: "dho_4", Reason: "the registry refused"})
	if d := getRegDomain(t, h.fsms[0], "dom_1"); d.Change.Status != api.ChangeFailed || d.Change.Reason != "the registry refused" || d.Hosts[0].Addresses[0] != "8.8.8.8" {
		t.Fatalf("after a refused change: %+v %+v", d.Change, d.Hosts)
	}
	h.must(CmdDomainHost, DomainHost{DomainID: "dom_1", AccountID: "acc_1", OpID: "dho_5", ClTRID: "dho_5", Name: "ns1.a.test", Delete: true})
	h.must(CmdDomainOpDone, DomainOpDone{DomainID: "dom_1", OpID: "dho_5", OK: true})
	if d := getRegDomain(t, h.fsms[0], "dom_1"); d.Hosts != nil || d.Change.Host == nil || !d.Change.Host.Delete {
		t.Fatalf("after the delete: %+v %+v", d.Change, d.Hosts)
	}
	h.replicasSame(domainAnswerDump)
}

// TestCheckHostAddresses: the command's addresses are canonical, IPv4
// first; the check is structural (the public-address policy is the API's,
// httpapi TestPublicGlueAddress), so a private address applies as the
// command holds it.
func TestCheckHostAddresses(t *testing.T) {
	got, i, err := CheckHostAddresses([]string{"2606:4700:0::1", "::ffff:8.8.8.8", "10.0.0.1"})
	if err != nil || !slices.Equal(got, []string{"8.8.8.8", "10.0.0.1", "2606:4700::1"}) {
		t.Fatalf("canonical: %v %d %v", got, i, err)
	}
	for _, bad := range []string{"fe80::1%eth0", "ns1.a.test", "", "8.8.8.8", "::ffff:8.8.8.8", "1.2.3"} {
		if _, i, err := CheckHostAddresses([]string{"8.8.8.8", bad}); err == nil || i != 1 {
			t.Errorf("%q: %d %v, want refused at 1", bad, i, err)
		}
	}
}

// TestDomainHostGolden: the encoding of CmdDomainHost's payload and what a
// level-16 log of a host's life writes are the golden's (testdata,
// domainhost_level16.golden): a later release that changes either changes
// what old logs apply to.
func TestDomainHostGolden(t *testing.T) {
	h := hostHarness(t, LevelDomainHosts)
	var out bytes.Buffer
	for _, p := range []DomainHost{
		hostCmd("dho_1", "ns1.a.test", "8.8.8.8", "2606:4700::1"),
		{DomainID: "dom_1", AccountID: "acc_1", OpID: "dho_2", ClTRID: "dho_2", Name: "ns1.a.test", Delete: true},
	} {
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&out, "payload %d %s\n", CmdDomainHost, b)
	}
	h.must(CmdDomainHost, hostCmd("dho_1", "ns1.a.test", "8.8.8.8", "2606:4700::1"))
	h.must(CmdDomainOpDone, DomainOpDone{DomainID: "dom_1", OpID: "dho_1", OK: true})
	h.must(CmdDomainHost, hostCmd("dho_2", "ns2.a.test", "1.1.1.1"))
	dumpBuckets(&out, h.fsms[0], store.BucketRegDomains, store.BucketRegDomainOps)
	_, want := readGolden(t, "domainhost_level16.golden", *updateDomainHostGolden, out.Bytes())
	if !bytes.Equal(out.Bytes(), want) {
		t.Fatalf("the level-16 host log applied otherwise than the golden:\n%s\nwant:\n%s", out.Bytes(), want)
	}
	h.replicasSame(domainAnswerDump)
}
