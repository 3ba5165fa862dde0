package epp_test

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/registrar"
	"github.com/hostplane/hostplane/coordinator/internal/registrar/epp"
	"github.com/hostplane/hostplane/tests/framework"
)

// These tests run the client against the real registry binary
// (tests/eppd/cmd/eppd) over TLS on loopback.

func TestMain(m *testing.M) { os.Exit(framework.Main(m)) }

const (
	idA, pwA = "reg-a", "secret-a1"
	idB, pwB = "reg-b", "secret-b1"
)

func startRegistry(t testing.TB) *framework.EPPD {
	return framework.StartEPPD(t, framework.EPPDOptions{TLDs: []string{"test", "example"},
		Clients: map[string]string{idA: pwA, idB: pwB}})
}

func dial(t testing.TB, r *framework.EPPD, id, pw string) *epp.Client {
	t.Helper()
	c, err := epp.New(epp.Config{Addr: r.Addr, TLS: r.TLSConfig(), ClientID: id, Password: pw,
		DialTimeout: 5 * time.Second, CommandTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// registered registers name for one year under clTRID; the test stops if
// that fails.
func registered(t *testing.T, ctx context.Context, c *epp.Client, clTRID, name string) registrar.Domain {
	t.Helper()
	d, err := c.Register(ctx, registrar.RegisterRequest{ClTRID: clTRID, Name: name, Years: 1})
	if err != nil {
		t.Fatalf("register %s: %v", name, err)
	}
	return d
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func contact(id string) registrar.Contact {
	return registrar.Contact{ID: id, Name: "Ada Lovelace", Org: "Example Ltd", Street: []string{"1 Main St"}, City: "London",
		PC: "N1 1AA", CC: "gb", Voice: "+44.2000000000", Email: "ada@example.test"}
}

func mustKind(t *testing.T, err error, k registrar.Kind, code int) *registrar.Error {
	t.Helper()
	var re *registrar.Error
	if !errors.As(err, &re) {
		t.Fatalf("want a registrar error of kind %v, got %v", k, err)
	}
	if re.Kind != k || (code != 0 && re.Code != code) {
		t.Fatalf("want kind %v code %d, got kind %v code %d: %v", k, code, re.Kind, re.Code, err)
	}
	return re
}

func TestDomainLifecycle(t *testing.T) {
	r := startRegistry(t)
	a, b := dial(t, r, idA, pwA), dial(t, r, idB, pwB)
	ctx := ctxT(t)

	if _, err := a.CreateContact(ctx, registrar.ContactRequest{ClTRID: "ct-1", Contact: contact("ada1")}); err != nil {
		t.Fatal(err)
	}
	ci, err := a.ContactInfo(ctx, "ada1")
	if err != nil || ci.Name != "Ada Lovelace" || ci.CC != "GB" || ci.Email != "ada@example.test" || ci.Street[0] != "1 Main St" {
		t.Fatalf("contact info %+v, %v", ci, err)
	}
	upd := contact("ada1")
	upd.Email = "ada@new.test"
	if _, err := a.UpdateContact(ctx, registrar.ContactRequest{ClTRID: "ct-2", Contact: upd}); err != nil {
		t.Fatal(err)
	}
	if ci, _ := a.ContactInfo(ctx, "ada1"); ci.Email != "ada@new.test" {
		t.Fatalf("contact update not applied: %+v", ci)
	}

	res, err := a.Check(ctx, "Shop.test", "shop.com", "bad_name.test", "a.b.test")
	if err != nil {
		t.Fatal(err)
	}
	if !res[0].Available || res[0].Name != "shop.test" || res[1].Available || res[1].Reason != "TLD not offered" ||
		res[2].Available || res[3].Available {
		t.Fatalf("check: %+v", res)
	}

	d, err := a.Register(ctx, registrar.RegisterRequest{ClTRID: "reg-1", Name: "shop.test", Years: 2,
		Nameservers: []string{"ns1.host.test", "NS2.host.test."}, Contacts: registrar.Contacts{Registrant: "ada1"}, Privacy: true})
	if err != nil {
		t.Fatal(err)
	}
	if d.SvTRID == "" || d.Expires.Sub(d.Created) < 2*365*24*time.Hour || d.AuthCode == "" {
		t.Fatalf("registered %+v", d)
	}
	if res, _ := b.Check(ctx, "shop.test"); res[0].Available {
		t.Fatal("a registered name is still available")
	}
	_, err = b.Register(ctx, registrar.RegisterRequest{ClTRID: "reg-b1", Name: "shop.test", Years: 1})
	if !errors.Is(err, registrar.ErrExists) {
		t.Fatalf("registering a taken name: %v", err)
	}
	_, err = a.Register(ctx, registrar.RegisterRequest{ClTRID: "reg-2", Name: "shop.com", Years: 1})
	if re := mustKind(t, err, registrar.KindRefused, 2306); re.Reason == "" || !registrar.Definite(err) {
		t.Fatalf("refusal without a reason: %v", err)
	}
	_, err = a.Register(ctx, registrar.RegisterRequest{ClTRID: "reg-3", Name: "xn--a.test", Years: 1})
	mustKind(t, err, registrar.KindRefused, 2005)

	info, err := a.Info(ctx, "shop.test")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(info.Nameservers, []string{"ns1.host.test", "ns2.host.test"}) || !info.Privacy || info.Locked ||
		info.Sponsor != idA || info.AuthCode != d.AuthCode || !info.Expires.Equal(d.Expires) || info.Contacts.Tech != "ada1" {
		t.Fatalf("info %+v", info)
	}

	ren, err := a.Renew(ctx, registrar.RenewRequest{ClTRID: "ren-1", Name: "shop.test", Years: 1, CurrentExpiry: info.Expires})
	if err != nil {
		t.Fatal(err)
	}
	if !ren.Expires.Equal(info.Expires.AddDate(1, 0, 0)) {
		t.Fatalf("renewed to %v from %v", ren.Expires, info.Expires)
	}
	// A second renewal from the stale expiry (another clTRID) is refused.
	_, err = a.Renew(ctx, registrar.RenewRequest{ClTRID: "ren-2", Name: "shop.test", Years: 1, CurrentExpiry: info.Expires})
	mustKind(t, err, registrar.KindRefused, 2306)

	if _, err := a.SetNameservers(ctx, registrar.NameserversRequest{ClTRID: "ns-1", Name: "shop.test",
		Nameservers: []string{"ns2.host.test", "ns3.other.test"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.SetLock(ctx, registrar.LockRequest{ClTRID: "lock-1", Name: "shop.test", Locked: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.SetPrivacy(ctx, registrar.PrivacyRequest{ClTRID: "priv-1", Name: "shop.test", Enabled: false}); err != nil {
		t.Fatal(err)
	}
	info, _ = a.Info(ctx, "shop.test")
	if !slices.Equal(info.Nameservers, []string{"ns2.host.test", "ns3.other.test"}) || !info.Locked || info.Privacy ||
		!slices.Contains(info.Status, "clientTransferProhibited") {
		t.Fatalf("after ns, lock and privacy: %+v", info)
	}

	// Another registrar sees the domain but not its auth code.
	if other, err := b.Info(ctx, "shop.test"); err != nil || other.AuthCode != "" || other.Sponsor != idA {
		t.Fatalf("info by another registrar: %+v, %v", other, err)
	}
	_, err = b.AuthCode(ctx, "shop.test")
	mustKind(t, err, registrar.KindRefused, 2201)
	_, err = b.SetLock(ctx, registrar.LockRequest{ClTRID: "b-lock", Name: "shop.test", Locked: false})
	mustKind(t, err, registrar.KindRefused, 2201)

	code, err := a.AuthCode(ctx, "shop.test")
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.Transfer(ctx, registrar.TransferRequest{ClTRID: "tr-1", Name: "shop.test", AuthCode: code})
	mustKind(t, err, registrar.KindRefused, 2304) // locked
	if _, err := a.SetLock(ctx, registrar.LockRequest{ClTRID: "lock-2", Name: "shop.test", Locked: false}); err != nil {
		t.Fatal(err)
	}
	_, err = b.Transfer(ctx, registrar.TransferRequest{ClTRID: "tr-2", Name: "shop.test", AuthCode: "wrong-code"})
	mustKind(t, err, registrar.KindRefused, 2202)
	tr, err := b.Transfer(ctx, registrar.TransferRequest{ClTRID: "tr-3", Name: "shop.test", AuthCode: code})
	if err != nil {
		t.Fatal(err)
	}
	if tr.Status != "serverApproved" || !tr.Expires.Equal(ren.Expires.AddDate(1, 0, 0)) {
		t.Fatalf("transfer %+v (expiry before %v)", tr, ren.Expires)
	}
	if info, _ := b.Info(ctx, "shop.test"); info.Sponsor != idB || info.AuthCode == code || info.AuthCode == "" {
		t.Fatalf("after transfer: sponsor %s, auth code renewed: %v", info.Sponsor, info.AuthCode != code)
	}
	_, err = a.SetNameservers(ctx, registrar.NameserversRequest{ClTRID: "ns-a2", Name: "shop.test", Nameservers: []string{"ns9.a.test"}})
	mustKind(t, err, registrar.KindRefused, 2201)

	// The losing registrar is told through its poll queue.
	msg, err := a.Poll(ctx)
	if err != nil || msg == nil || msg.Domain != "shop.test" || msg.TransferStatus != "serverApproved" || msg.Count != 1 {
		t.Fatalf("poll: %+v, %v", msg, err)
	}
	if err := a.Ack(ctx, msg.ID); err != nil {
		t.Fatal(err)
	}
	if msg, err := a.Poll(ctx); err != nil || msg != nil {
		t.Fatalf("poll after ack: %+v, %v", msg, err)
	}

	if _, err := b.SetAuthCode(ctx, registrar.AuthCodeRequest{ClTRID: "auth-1", Name: "shop.test", AuthCode: "new-code-1"}); err != nil {
		t.Fatal(err)
	}
	if c, _ := b.AuthCode(ctx, "shop.test"); c != "new-code-1" {
		t.Fatalf("auth code %q", c)
	}
	if _, err := b.Delete(ctx, registrar.DeleteRequest{ClTRID: "del-1", Name: "shop.test"}); err != nil {
		t.Fatal(err)
	}
	_, err = b.Info(ctx, "shop.test")
	if !errors.Is(err, registrar.ErrNotFound) {
		t.Fatalf("info after delete: %v", err)
	}
	if res, _ := a.Check(ctx, "shop.test"); !res[0].Available {
		t.Fatal("a deleted name is not available again")
	}
}

// A repeated clTRID is applied once and answered with the original result,
// including when the first answer was lost and across a registry restart.
func TestClTRIDAppliedOnce(t *testing.T) {
	r := startRegistry(t)
	a := dial(t, r, idA, pwA)
	ctx := ctxT(t)

	d1 := registered(t, ctx, a, "dom-1-create", "once.test")
	d2, err := a.Register(ctx, registrar.RegisterRequest{ClTRID: "dom-1-create", Name: "once.test", Years: 1})
	if err != nil {
		t.Fatalf("repeat of an applied create: %v (want the original answer, not 2302)", err)
	}
	if d2.SvTRID != d1.SvTRID || !d2.Expires.Equal(d1.Expires) {
		t.Fatalf("repeat answered %s/%v, original %s/%v", d2.SvTRID, d2.Expires, d1.SvTRID, d1.Expires)
	}
	before := r.Stats()

	// The registry applies the renewal and the connection drops before the
	// answer: the outcome is unknown; the repeat learns it.
	r.DropNext(1, true)
	_, err = a.Renew(ctx, registrar.RenewRequest{ClTRID: "dom-1-renew", Name: "once.test", Years: 1, CurrentExpiry: d1.Expires})
	mustKind(t, err, registrar.KindUnknown, 0)
	if registrar.Definite(err) || !registrar.Transient(err) {
		t.Fatalf("unknown outcome is definite=%v transient=%v", registrar.Definite(err), registrar.Transient(err))
	}
	ren, err := a.Renew(ctx, registrar.RenewRequest{ClTRID: "dom-1-renew", Name: "once.test", Years: 1, CurrentExpiry: d1.Expires})
	if err != nil {
		t.Fatalf("repeat after a lost answer: %v", err)
	}
	info, _ := a.Info(ctx, "once.test")
	if !info.Expires.Equal(d1.Expires.AddDate(1, 0, 0)) || !ren.Expires.Equal(info.Expires) {
		t.Fatalf("expiry %v after one renewal sent twice, want %v", info.Expires, d1.Expires.AddDate(1, 0, 0))
	}
	after := r.Stats()
	if after.Applied-before.Applied != 1 || after.Replayed-before.Replayed != 1 {
		t.Fatalf("applied %d, replayed %d; want 1 and 1", after.Applied-before.Applied, after.Replayed-before.Replayed)
	}

	// A name server change whose answer was lost: the repeat finds the
	// delegation already as asked and sends nothing; one update applied.
	// (Name servers outside once.test: the registry takes one inside it
	// only with glue, which the interface does not carry.)
	before = r.Stats()
	r.DropNextOn("domain:update", 1, true)
	nsReq := registrar.NameserversRequest{ClTRID: "dom-1-ns", Name: "once.test", Nameservers: []string{"ns1.once-dns.test", "ns2.once-dns.test"}}
	_, err = a.SetNameservers(ctx, nsReq)
	mustKind(t, err, registrar.KindUnknown, 0)
	if tx, err := a.SetNameservers(ctx, nsReq); err != nil || tx.ClTRID != "dom-1-ns" {
		t.Fatalf("repeat of the name server change: %+v, %v", tx, err)
	}
	if info, _ := a.Info(ctx, "once.test"); !slices.Equal(info.Nameservers, nsReq.Nameservers) {
		t.Fatalf("name servers %v", info.Nameservers)
	}
	if st := r.Stats(); st.Applied-before.Applied != 1 || st.Injected-before.Injected != 1 {
		t.Fatalf("applied %d, injected %d; want 1 and 1", st.Applied-before.Applied, st.Injected-before.Injected)
	}

	// The same clTRID for another command is refused, not applied.
	_, err = a.Delete(ctx, registrar.DeleteRequest{ClTRID: "dom-1-renew", Name: "once.test"})
	mustKind(t, err, registrar.KindRefused, 2306)

	// The record survives a graceful restart and a crash.
	r.Restart()
	d3, err := a.Register(ctx, registrar.RegisterRequest{ClTRID: "dom-1-create", Name: "once.test", Years: 1})
	if err != nil || d3.SvTRID != d1.SvTRID {
		t.Fatalf("repeat after restart: %v, svTRID %s want %s", err, d3.SvTRID, d1.SvTRID)
	}
	r.Kill()
	r.Start()
	if info, err := a.Info(ctx, "once.test"); err != nil || !info.Expires.Equal(ren.Expires) {
		t.Fatalf("after a crash: %+v, %v", info, err)
	}
	ren2, err := a.Renew(ctx, registrar.RenewRequest{ClTRID: "dom-1-renew", Name: "once.test", Years: 1, CurrentExpiry: d1.Expires})
	if err != nil || ren2.SvTRID != ren.SvTRID {
		t.Fatalf("renew repeated after a crash: %v, svTRID %s want %s", err, ren2.SvTRID, ren.SvTRID)
	}
}

// Injected failures reach the caller as the typed errors, and the registry
// coming back serves the same client without a new one.
func TestFailureInjection(t *testing.T) {
	r := startRegistry(t)
	a := dial(t, r, idA, pwA)
	ctx := ctxT(t)
	d := registered(t, ctx, a, "fi-create", "flaky.test")

	// 2400: not applied, definite, transient; the same clTRID later applies.
	r.FailNext(1, 0)
	_, err := a.SetPrivacy(ctx, registrar.PrivacyRequest{ClTRID: "fi-priv", Name: "flaky.test", Enabled: true})
	mustKind(t, err, registrar.KindUnavailable, 2400)
	if !registrar.Definite(err) || !registrar.Transient(err) {
		t.Fatalf("2400: definite=%v transient=%v", registrar.Definite(err), registrar.Transient(err))
	}
	if info, _ := a.Info(ctx, "flaky.test"); info.Privacy {
		t.Fatal("a failed command was applied")
	}
	if _, err := a.SetPrivacy(ctx, registrar.PrivacyRequest{ClTRID: "fi-priv", Name: "flaky.test", Enabled: true}); err != nil {
		t.Fatalf("repeat after 2400: %v", err)
	}

	// Down: connections refused; the change is definitely not applied.
	r.Down()
	_, err = a.SetNameservers(ctx, registrar.NameserversRequest{ClTRID: "fi-ns", Name: "flaky.test", Nameservers: []string{"ns1.x.test"}})
	re := mustKind(t, err, registrar.KindUnavailable, 0)
	if !registrar.Definite(err) || re.Reason != "the registry could not be reached" {
		t.Fatalf("registry down: definite %v, reason %q: %v", registrar.Definite(err), re.Reason, err)
	}
	_, err = a.Check(ctx, "any.test")
	mustKind(t, err, registrar.KindUnavailable, 0)
	r.Up()
	if _, err := a.SetNameservers(ctx, registrar.NameserversRequest{ClTRID: "fi-ns", Name: "flaky.test", Nameservers: []string{"ns1.x.test"}}); err != nil {
		t.Fatalf("after the registry came back: %v", err)
	}
	if info, _ := a.Info(ctx, "flaky.test"); !slices.Equal(info.Nameservers, []string{"ns1.x.test"}) {
		t.Fatalf("nameservers %v", info.Nameservers)
	}

	// A dropped connection before a query: retried once on a new session.
	r.DropNext(1, false)
	if _, err := a.Info(ctx, "flaky.test"); err != nil {
		t.Fatalf("query after a dropped connection: %v", err)
	}

	// Slower than the caller's deadline: unknown; the registry applies it
	// anyway and the repeat answers the original result.
	r.DelayNext(1, 1500*time.Millisecond)
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err = a.Renew(short, registrar.RenewRequest{ClTRID: "fi-renew", Name: "flaky.test", Years: 1, CurrentExpiry: d.Expires})
	cancel()
	if re := mustKind(t, err, registrar.KindUnknown, 0); re.Reason != "no answer from the registry; the change may have been applied" {
		t.Fatalf("reason %q", re.Reason)
	}
	time.Sleep(1500 * time.Millisecond)
	ren, err := a.Renew(ctx, registrar.RenewRequest{ClTRID: "fi-renew", Name: "flaky.test", Years: 1, CurrentExpiry: d.Expires})
	if err != nil || !ren.Expires.Equal(d.Expires.AddDate(1, 0, 0)) {
		t.Fatalf("repeat of the slow renewal: %+v, %v", ren, err)
	}

	// A session the registry closed while idle is replaced before the next
	// command, so the command is not lost to it.
	r.Down()
	r.Up()
	if _, err := a.SetLock(ctx, registrar.LockRequest{ClTRID: "fi-lock", Name: "flaky.test", Locked: true}); err != nil {
		t.Fatalf("after the session was closed while idle: %v", err)
	}
}

func TestLoginRefused(t *testing.T) {
	r := startRegistry(t)
	c := dial(t, r, idA, "wrong-pass")
	_, err := c.Check(ctxT(t), "x.test")
	mustKind(t, err, registrar.KindRefused, 2200)
}

// The keep-alive holds a session the registry would close when idle; without
// it, the closed session is replaced before the next command, which is not
// lost to it.
func TestKeepAliveAndIdleClose(t *testing.T) {
	r := framework.StartEPPD(t, framework.EPPDOptions{Clients: map[string]string{idA: pwA}, IdleTimeout: 2 * time.Second})
	ctx := ctxT(t)
	for _, tc := range []struct {
		name      string
		keepAlive time.Duration
		conns     int
	}{{"keep-alive", 300 * time.Millisecond, 1}, {"none", -1, 2}} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := epp.New(epp.Config{Addr: r.Addr, TLS: r.TLSConfig(), ClientID: idA, Password: pwA, KeepAlive: tc.keepAlive})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			before := r.Stats().Connections
			if _, err := c.Check(ctx, "idle.test"); err != nil {
				t.Fatal(err)
			}
			time.Sleep(3 * time.Second)
			if _, err := c.CreateContact(ctx, registrar.ContactRequest{ClTRID: "idle-" + tc.name, Contact: contact("idle-" + tc.name)}); err != nil {
				t.Fatalf("command after 3s idle: %v", err)
			}
			if got := r.Stats().Connections - before; got != tc.conns {
				t.Fatalf("%d connections, want %d", got, tc.conns)
			}
		})
	}
}

// A registry that keeps transfers pending answers the request with a
// pending result; the losing registrar sees pendingTransfer and a poll
// message, cannot change the domain meanwhile, and the registry approves the
// transfer when its time has passed, telling both.
func TestPendingTransfer(t *testing.T) {
	r := framework.StartEPPD(t, framework.EPPDOptions{Clients: map[string]string{idA: pwA, idB: pwB}, TransferPending: 3 * time.Second})
	a, b := dial(t, r, idA, pwA), dial(t, r, idB, pwB)
	ctx := ctxT(t)
	d := registered(t, ctx, a, "pt-create", "moving.test")
	tr, err := b.Transfer(ctx, registrar.TransferRequest{ClTRID: "pt-transfer", Name: "moving.test", AuthCode: d.AuthCode})
	if err != nil {
		t.Fatal(err)
	}
	if !tr.Pending || tr.Status != "pending" {
		t.Fatalf("transfer request: %+v, want pending", tr)
	}
	if info, _ := a.Info(ctx, "moving.test"); !slices.Contains(info.Status, "pendingTransfer") || info.Sponsor != idA {
		t.Fatalf("while pending: %+v", info)
	}
	_, err = a.SetLock(ctx, registrar.LockRequest{ClTRID: "pt-lock", Name: "moving.test", Locked: true})
	mustKind(t, err, registrar.KindRefused, 2300)
	if m, err := a.Poll(ctx); err != nil || m == nil || m.TransferStatus != "pending" || m.Domain != "moving.test" {
		t.Fatalf("loser's poll: %+v, %v", m, err)
	} else if err := a.Ack(ctx, m.ID); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, err := b.Info(ctx, "moving.test")
		if err == nil && info.Sponsor == idB {
			if !info.Expires.Equal(d.Expires.AddDate(1, 0, 0)) || slices.Contains(info.Status, "pendingTransfer") {
				t.Fatalf("after approval: %+v", info)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("transfer not approved 10s after a 3s wait: %+v, %v", info, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, c := range []*epp.Client{a, b} {
		if m, err := c.Poll(ctx); err != nil || m == nil || m.TransferStatus != "serverApproved" {
			t.Fatalf("poll after approval: %+v, %v", m, err)
		}
	}
}

// hostObjectsClient is registrar A's client with HostObjects.
func hostObjectsClient(t *testing.T, r *framework.EPPD) *epp.Client {
	t.Helper()
	c, err := epp.New(epp.Config{Addr: r.Addr, TLS: r.TLSConfig(), ClientID: idA, Password: pwA, HostObjects: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// With HostObjects, name servers are created as RFC 5732 host objects and
// delegated with hostObj; a repeat creates nothing twice; a name server
// under a domain of the registry needs glue the interface does not carry,
// and is refused with the registry's reason.
func TestHostObjects(t *testing.T) {
	r := startRegistry(t)
	c := hostObjectsClient(t, r)
	ctx := ctxT(t)
	req := registrar.RegisterRequest{ClTRID: "ho-create", Name: "hosted.test", Years: 1, Nameservers: []string{"ns1.dns.example", "ns2.dns.example"}}
	if _, err := c.Register(ctx, req); err != nil {
		t.Fatal(err)
	}
	before := r.Stats()
	if _, err := c.Register(ctx, req); err != nil {
		t.Fatalf("repeat: %v", err)
	}
	if st := r.Stats(); st.Applied != before.Applied {
		t.Fatalf("a repeat applied %d commands", st.Applied-before.Applied)
	}
	if _, err := c.SetNameservers(ctx, registrar.NameserversRequest{ClTRID: "ho-ns", Name: "hosted.test",
		Nameservers: []string{"ns2.dns.example", "ns3.dns.example"}}); err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(ctx, "hosted.test")
	if err != nil || !slices.Equal(info.Nameservers, []string{"ns2.dns.example", "ns3.dns.example"}) {
		t.Fatalf("info %+v, %v", info, err)
	}
	var hosts []string
	for _, tx := range r.Transactions("host:create", "") {
		if tx.Code == 1000 {
			hosts = append(hosts, tx.Object)
		}
	}
	slices.Sort(hosts)
	if !slices.Equal(hosts, []string{"ns1.dns.example", "ns2.dns.example", "ns3.dns.example"}) {
		t.Fatalf("host objects created: %v", hosts)
	}
	_, err = c.SetNameservers(ctx, registrar.NameserversRequest{ClTRID: "ho-glue", Name: "hosted.test",
		Nameservers: []string{"ns1.hosted.test", "ns2.dns.example"}})
	if re := mustKind(t, err, registrar.KindRefused, 2003); re.Op != "domain:update" || !strings.Contains(re.Reason, "glue") {
		t.Fatalf("in-bailiwick name server: %v", err)
	}
}

// TestHostGlue: with HostObjects, SetHost creates a name server under one of
// the account's domains with its glue addresses (host:create), then changes
// them (host:update add/rem, an IPv6 removal too), each applied once per clTRID (a repeat sends
// nothing); the host then delegates the domain itself (in-bailiwick) and
// another domain of the registry, which were refused for want of glue
// before; DeleteHost is refused while a domain delegates to it (2305) and
// deletes it after; a client without HostObjects refuses host calls before
// sending anything. Before, no call made a host with addresses.
func TestHostGlue(t *testing.T) {
	r := startRegistry(t)
	c := hostObjectsClient(t, r)
	ctx := ctxT(t)
	registered(t, ctx, c, "hg-a", "glue.test")
	registered(t, ctx, c, "hg-b", "other.test")
	set := registrar.HostRequest{ClTRID: "hg-h1", Name: "NS1.glue.test.", Addrs: []string{"192.0.2.1", "2001:DB8::1"}}
	if _, err := c.SetHost(ctx, set); err != nil {
		t.Fatal(err)
	}
	before := r.Stats()
	if tx, err := c.SetHost(ctx, set); err != nil || tx.SvTRID != "" || r.Stats().Applied != before.Applied {
		t.Fatalf("a repeat: %+v, %v (applied %d more)", tx, err, r.Stats().Applied-before.Applied)
	}
	h, err := c.HostInfo(ctx, "ns1.glue.test")
	if err != nil || !slices.Equal(h.Addrs, []string{"192.0.2.1", "2001:db8::1"}) || h.Linked {
		t.Fatalf("host info %+v, %v", h, err)
	}
	if _, err := c.SetHost(ctx, registrar.HostRequest{ClTRID: "hg-h2", Name: "ns1.glue.test", Addrs: []string{"192.0.2.2", "2001:db8::1"}}); err != nil {
		t.Fatal(err)
	}
	if h, err := c.HostInfo(ctx, "ns1.glue.test"); err != nil || !slices.Equal(h.Addrs, []string{"2001:db8::1", "192.0.2.2"}) {
		t.Fatalf("after the change %+v, %v", h, err)
	}
	// An IPv6 address removed goes as ip="v6" (the registry refuses an
	// address whose ip attribute says otherwise).
	if _, err := c.SetHost(ctx, registrar.HostRequest{ClTRID: "hg-h3", Name: "ns1.glue.test", Addrs: []string{"192.0.2.2"}}); err != nil {
		t.Fatal(err)
	}
	if h, err := c.HostInfo(ctx, "ns1.glue.test"); err != nil || !slices.Equal(h.Addrs, []string{"192.0.2.2"}) {
		t.Fatalf("after the IPv6 address's removal %+v, %v", h, err)
	}
	for _, d := range []string{"glue.test", "other.test"} {
		if _, err := c.SetNameservers(ctx, registrar.NameserversRequest{ClTRID: "hg-ns-" + d, Name: d,
			Nameservers: []string{"ns1.glue.test", "ns2.dns.example"}}); err != nil {
			t.Fatalf("%s delegated to ns1.glue.test: %v", d, err)
		}
	}
	if h, err := c.HostInfo(ctx, "ns1.glue.test"); err != nil || !h.Linked {
		t.Fatalf("a delegated host: %+v, %v", h, err)
	}
	_, err = c.DeleteHost(ctx, registrar.DeleteRequest{ClTRID: "hg-del-1", Name: "ns1.glue.test"})
	mustKind(t, err, registrar.KindRefused, 2305)
	for _, d := range []string{"glue.test", "other.test"} {
		if _, err := c.SetNameservers(ctx, registrar.NameserversRequest{ClTRID: "hg-ns2-" + d, Name: d, Nameservers: []string{"ns2.dns.example"}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.DeleteHost(ctx, registrar.DeleteRequest{ClTRID: "hg-del-2", Name: "ns1.glue.test"}); err != nil {
		t.Fatal(err)
	}
	_, err = c.HostInfo(ctx, "ns1.glue.test")
	mustKind(t, err, registrar.KindNotFound, 2303)
	if tx, err := c.DeleteHost(ctx, registrar.DeleteRequest{ClTRID: "hg-del-2", Name: "ns1.glue.test"}); err != nil || tx.SvTRID != "" {
		t.Fatalf("a repeated delete: %+v, %v", tx, err)
	}

	attrs := dial(t, r, idA, pwA)
	before = r.Stats()
	_, err = attrs.SetHost(ctx, registrar.HostRequest{ClTRID: "hg-attr", Name: "ns1.glue.test", Addrs: []string{"192.0.2.1"}})
	if re := mustKind(t, err, registrar.KindRefused, 2306); !strings.Contains(re.Reason, "host attributes") || r.Stats().Applied != before.Applied {
		t.Fatalf("a host-attribute client's SetHost: %v", err)
	}
}

// TestDeleteWithChildNameServers: Info lists a domain's host objects
// (domain:info <domain:host>), and the registry refuses to delete a domain
// that has any (2305, naming them: RFC 5731 §3.2.2), as a definite refusal;
// once they are deleted the domain is. Before, the test registry deleted
// the domain and left its hosts, and Info had no hosts.
func TestDeleteWithChildNameServers(t *testing.T) {
	r := startRegistry(t)
	c := hostObjectsClient(t, r)
	ctx := ctxT(t)
	registered(t, ctx, c, "dc-a", "del.test")
	if _, err := c.SetHost(ctx, registrar.HostRequest{ClTRID: "dc-h1", Name: "ns1.del.test", Addrs: []string{"192.0.2.1"}}); err != nil {
		t.Fatal(err)
	}
	if d, err := c.Info(ctx, "del.test"); err != nil || !slices.Equal(d.Hosts, []string{"ns1.del.test"}) {
		t.Fatalf("info: %+v %v", d, err)
	}
	_, err := c.Delete(ctx, registrar.DeleteRequest{ClTRID: "dc-d1", Name: "del.test"})
	if e := mustKind(t, err, registrar.KindRefused, 2305); !strings.Contains(e.Reason, "ns1.del.test") {
		t.Fatalf("the refusal does not name the host: %v", e)
	}
	if _, err := c.DeleteHost(ctx, registrar.DeleteRequest{ClTRID: "dc-h2", Name: "ns1.del.test"}); err != nil {
		t.Fatal(err)
	}
	if d, err := c.Info(ctx, "del.test"); err != nil || d.Hosts != nil {
		t.Fatalf("info after the host's deletion: %+v %v", d, err)
	}
	if _, err := c.Delete(ctx, registrar.DeleteRequest{ClTRID: "dc-d2", Name: "del.test"}); err != nil {
		t.Fatalf("delete of the domain without hosts: %v", err)
	}
}
