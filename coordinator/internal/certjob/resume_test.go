package certjob

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
)

// TestTakeoverResumesTheOrder: leader A records the order (its URL and its
// sealed certificate key) and dies while the HTTP-01 challenge is pending;
// leader B takes the order over at once (another leadership's order), fetches
// it by its URL and finishes it: pebble issued exactly one certificate, for
// the key A recorded, from A's order. A recorded order that cannot be
// fetched is ordered anew, and the status says so while it runs.
func TestTakeoverResumesTheOrder(t *testing.T) {
	nd, pb, st, _ := rig(t, []string{"once.example.test. 60 IN A 127.0.0.1"}, "once")

	sealer, runner := runners(t, nd, pb, st)
	one := func(at time.Time, owner string) []Order {
		due, _ := DueFor(st.domains(t), at, owner)
		return due
	}
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()

	// Leader A dies while the challenge is pending (its job's context ends).
	actx, kill := context.WithCancel(ctx)
	nd.onPresent = func() error { kill(); return actx.Err() }
	due := one(time.Now(), "lead_a")
	if len(due) != 1 || due[0].Reason != ReasonNew {
		t.Fatalf("due: %+v", due)
	}
	if err := runner("lead_a").Run(actx, due[0]); err == nil {
		t.Fatal("leader A's order ended although it died")
	}
	rec := st.domains(t)[0].Cert
	if rec == nil || rec.OrderID == "" || !strings.HasPrefix(rec.OrderURL, "https://") || rec.OrderKey == "" || strings.Contains(rec.OrderKey, "PRIVATE KEY") || rec.OrderOwner != "lead_a" {
		t.Fatalf("the dead leader's order is not recorded with its URL and sealed key: %+v", rec)
	}
	if c := st.domains(t)[0].Certificate; c == nil || c.Status != api.CertificatePending {
		t.Fatalf("status of the order in flight: %+v", c)
	}
	if due := one(time.Now(), "lead_a"); len(due) != 0 {
		t.Fatalf("an order is due for its own leadership before its end: %+v", due)
	}

	// Leader B takes it over at once and finishes that very order.
	due = one(time.Now(), "lead_b")
	if len(due) != 1 || due[0].Reason != ReasonTakeover {
		t.Fatalf("due for the next leader: %+v", due)
	}
	if err := runner("lead_b").Run(ctx, due[0]); err != nil {
		t.Fatal(err)
	}
	issued := pb.Issued(t)
	orderPath := rec.OrderURL[strings.LastIndex(rec.OrderURL, "/")+1:]
	if len(issued) != 1 || !strings.HasSuffix(strings.TrimSpace(issued[0]), "for order "+orderPath) {
		t.Fatalf("pebble issued %d certificates (want 1, from the recorded order %s): %q", len(issued), rec.OrderURL, issued)
	}
	d := st.domains(t)[0]
	if d.Certificate == nil || d.Certificate.Status != api.CertificateIssued || d.Cert.OrderID != "" || d.Cert.OrderURL != "" {
		t.Fatalf("after the takeover: %+v %+v", d.Certificate, d.Cert)
	}
	key, err := sealer.Open(SealID("once.example.test"), d.Cert.SealedKey)
	if err != nil {
		t.Fatal(err)
	}
	recKey, _ := sealer.Open(SealID("once.example.test"), rec.OrderKey)
	if key != recKey || string(nd.keys["once.example.test"]) != key {
		t.Fatal("the certificate's key is not the one the dead leader recorded with its order")
	}

	// A recorded order the server no longer knows is ordered anew, saying so.
	reused := renewKilled(t, ctx, nd, st, "hst_0", func() []Order { return one(time.Now(), "lead_b") }, runner("lead_b"))
	rec = st.domains(t)[0].Cert
	bogus := rec.OrderURL[:strings.LastIndex(rec.OrderURL, "/")+1] + "no-such-order"
	st.must(t, fsm.CmdCertOrderStart, fsm.CertOrderStart{HostingID: "hst_0", Domain: "once.example.test", OrderID: rec.OrderID,
		Until: time.Now().Add(time.Minute), Owner: "lead_b", OrderURL: bogus})
	// The status is read when the new order is finalized: a challenge may not
	// be presented at all (pebble reusing the valid authorization, as above).
	var during *api.CertificateStatus
	c := runner("lead_c")
	c.Config.HTTPClient = &http.Client{Timeout: pb.Client.Timeout, Transport: &failAt{base: pb.Client.Transport, prefix: "/finalize-order/", armed: true,
		hit: func() error { during = st.domains(t)[0].Certificate; return nil }}}
	due = one(time.Now(), "lead_c")
	if len(due) != 1 || due[0].Reason != ReasonTakeover {
		t.Fatalf("due for leader C: %+v", due)
	}
	if err := c.Run(ctx, due[0]); err != nil {
		t.Fatal(err)
	}
	if during == nil || during.Status != api.CertificatePending || !strings.Contains(during.Reason, "cannot be fetched") || !strings.Contains(during.Reason, "ordered anew") {
		t.Fatalf("status while ordering anew: %+v", during)
	}
	if n := len(pb.Issued(t)); n != 2+reused {
		t.Fatalf("pebble issued %d certificates after one renewal (and %d renewals retried), want %d", n, reused, 2+reused)
	}
}

// renewKilled retries hostingID's certificate and runs its renewal with r,
// whose leader dies at the challenge; it returns how many renewals were
// retried. pebble (v2.10.3) reuses a valid authorization 1 time in 100 even
// at PEBBLE_AUTHZREUSE=0 (it places a new one only when rand.Intn(100) > 0;
// a negative value is refused): such a renewal presents no challenge, so its
// leader is not killed and it ends with a certificate. It is retried, at most
// 3 times; the caller's counts of orders and certificates include them.
func renewKilled(t *testing.T, ctx context.Context, nd *node, st *fsmState, hostingID string, due func() []Order, r *Runner) (reused int) {
	t.Helper()
	for {
		st.must(t, fsm.CmdCertRetry, fsm.CertRetry{HostingID: hostingID, AccountID: "acc_1"})
		bctx, killB := context.WithCancel(ctx)
		nd.onPresent = func() error { killB(); return bctx.Err() }
		d := due()
		if len(d) != 1 || d[0].Reason != ReasonRenew {
			t.Fatalf("due after a retry: %+v", d)
		}
		before := nd.presented
		err := r.Run(bctx, d[0])
		killB()
		if err == nil && nd.presented == before && reused < 3 {
			reused++
			t.Logf("renewal %d: pebble reused the valid authorization (no challenge presented); retried", reused)
			continue
		}
		if err == nil {
			t.Fatal("the renewal ended although its leader died")
		}
		return reused
	}
}

// failAt fails (or runs hit on) the first request whose path starts with
// prefix: a failure injected at one step of the ACME exchange.
type failAt struct {
	base   http.RoundTripper
	prefix string
	mu     sync.Mutex
	armed  bool
	hit    func() error
}

func (f *failAt) RoundTrip(req *http.Request) (*http.Response, error) {
	f.mu.Lock()
	fire := f.armed && strings.HasPrefix(req.URL.Path, f.prefix)
	if fire {
		f.armed = false
	}
	f.mu.Unlock()
	if fire {
		if err := f.hit(); err != nil {
			return nil, err
		}
	}
	return f.base.RoundTrip(req)
}

// TestFailureAfterFinalizeResumesTheOrder: once an order is finalized the
// CA issues its certificate, so a failure after it must fetch that
// certificate later, not order again. The certificate download fails
// (injected at pebble's /certZ/): the order stays recorded with its URL and
// key, the status says when it is resumed, nothing is due before the
// back-off; after it the same leadership resumes the order by its URL and
// gets the certificate already issued. The leader dying at the download
// instead: the next leader takes over at once and fetches it. Pebble has
// exactly one order and one certificate per domain, and each installed
// certificate is for the recorded key. A successor that cannot reach the
// recorded order (a network error) keeps it and resumes it later, rather
// than ordering anew.
func TestFailureAfterFinalizeResumesTheOrder(t *testing.T) {
	nd, pb, st, _ := rig(t, []string{"fetch.example.test. 60 IN A 127.0.0.1", "killed.example.test. 60 IN A 127.0.0.1"}, "fetch", "killed")
	sealer, runner := runners(t, nd, pb, st)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	byName := func() map[string]store.CustomDomain {
		m := map[string]store.CustomDomain{}
		for _, d := range st.domains(t) {
			m[d.Domain] = d
		}
		return m
	}
	dueFor := func(domain string, at time.Time, owner string) []Order {
		due, _ := DueFor(st.domains(t), at, owner)
		var out []Order
		for _, o := range due {
			if o.Domain.Domain == domain {
				out = append(out, o)
			}
		}
		return out
	}
	withFault := func(r *Runner, hit func() error) *Runner {
		r.Config.HTTPClient = &http.Client{Timeout: pb.Client.Timeout, Transport: &failAt{base: pb.Client.Transport, prefix: "/certZ/", armed: true, hit: hit}}
		return r
	}
	// checkOne: pebble holds orders in all (one per domain so far), and one
	// certificate from domain's recorded order.
	checkOne := func(domain string, rec *store.CertState, orders int) {
		t.Helper()
		issued := 0
		orderPath := rec.OrderURL[strings.LastIndex(rec.OrderURL, "/")+1:]
		for _, l := range pb.Issued(t) {
			if strings.HasSuffix(strings.TrimSpace(l), "for order "+orderPath) {
				issued++
			}
		}
		d := byName()[domain]
		if got := len(pb.Orders(t)); got != orders || issued != 1 || d.Certificate == nil || d.Certificate.Status != api.CertificateIssued || d.Cert.OrderID != "" {
			t.Fatalf("%s: pebble has %d orders (want %d) and %d certificates of the recorded order (want 1); status %+v\norders: %q", domain, got, orders, issued, d.Certificate, pb.Orders(t))
		}
		key, err := sealer.Open(SealID(domain), d.Cert.SealedKey)
		recKey, rerr := sealer.Open(SealID(domain), rec.OrderKey)
		if err != nil || rerr != nil || key != recKey || string(nd.keys[domain]) != key {
			t.Fatalf("%s: the installed key is not the order's recorded key (%v, %v)", domain, err, rerr)
		}
	}

	// The download fails: the order is kept, resumed after the back-off.
	due := dueFor("fetch.example.test", time.Now(), "lead_a")
	if len(due) != 1 || due[0].Reason != ReasonNew {
		t.Fatalf("due: %+v", due)
	}
	a := withFault(runner("lead_a"), func() error { return errors.New("injected: connection reset by peer") })
	if err := a.Run(ctx, due[0]); err == nil || !strings.Contains(err.Error(), "injected") {
		t.Fatalf("run with the download failing: %v", err)
	}
	d := byName()["fetch.example.test"]
	rec := d.Cert
	if rec == nil || rec.OrderID == "" || rec.OrderURL == "" || rec.OrderKey == "" || rec.Failures != 1 {
		t.Fatalf("the finalized order is not kept after the download failed: %+v", rec)
	}
	if c := d.Certificate; c == nil || c.Status != api.CertificatePending || !strings.Contains(c.Reason, "resumed at") || !strings.Contains(c.Reason, "injected") {
		t.Fatalf("status while the order waits: %+v", c)
	}
	if due := dueFor("fetch.example.test", time.Now(), "lead_a"); len(due) != 0 {
		t.Fatalf("due before the back-off: %+v", due)
	}
	due = dueFor("fetch.example.test", rec.RetryAt.Add(time.Second), "lead_a")
	if len(due) != 1 || due[0].Reason != ReasonTakeover {
		t.Fatalf("due after the back-off: %+v", due)
	}
	presented := nd.presented
	if err := runner("lead_a").Run(ctx, due[0]); err != nil {
		t.Fatal(err)
	}
	if nd.presented != presented {
		t.Fatal("the resumed order answered a challenge again")
	}
	checkOne("fetch.example.test", rec, 1)

	// The leader dies at the download: the next one fetches it at once.
	actx, kill := context.WithCancel(ctx)
	due = dueFor("killed.example.test", time.Now(), "lead_a")
	if len(due) != 1 || due[0].Reason != ReasonNew {
		t.Fatalf("due: %+v", due)
	}
	a = withFault(runner("lead_a"), func() error { kill(); return actx.Err() })
	if err := a.Run(actx, due[0]); err == nil {
		t.Fatal("the order ended although its leader died at the download")
	}
	rec = byName()["killed.example.test"].Cert
	if rec == nil || rec.OrderURL == "" || rec.OrderOwner != "lead_a" || rec.Failures != 0 {
		t.Fatalf("the dead leader's finalized order: %+v", rec)
	}
	due = dueFor("killed.example.test", time.Now(), "lead_b")
	if len(due) != 1 || due[0].Reason != ReasonTakeover {
		t.Fatalf("due for the next leader: %+v", due)
	}
	if err := runner("lead_b").Run(ctx, due[0]); err != nil {
		t.Fatal(err)
	}
	checkOne("killed.example.test", rec, 2)

	// A renewal whose leader dies at the challenge; its successor cannot
	// fetch the recorded order (a network error, not the server refusing
	// it): the order is kept, not placed again, and resumed after the
	// back-off.
	reused := renewKilled(t, ctx, nd, st, "hst_1", func() []Order { return dueFor("killed.example.test", time.Now(), "lead_b") }, runner("lead_b"))
	rec = byName()["killed.example.test"].Cert
	due = dueFor("killed.example.test", time.Now(), "lead_c")
	if len(due) != 1 || due[0].Reason != ReasonTakeover {
		t.Fatalf("due for leader C: %+v", due)
	}
	c := withFault(runner("lead_c"), func() error { return errors.New("injected: no route to host") })
	c.Config.HTTPClient.Transport.(*failAt).prefix = "/my-order/"
	if err := c.Run(ctx, due[0]); err == nil || !strings.Contains(err.Error(), "injected") {
		t.Fatalf("takeover with the order unreachable: %v", err)
	}
	kept := byName()["killed.example.test"].Cert
	if kept.OrderURL != rec.OrderURL || kept.OrderKey != rec.OrderKey || kept.Failures != 1 {
		t.Fatalf("the unreachable order was not kept: %+v", kept)
	}
	due = dueFor("killed.example.test", kept.RetryAt.Add(time.Second), "lead_c")
	if len(due) != 1 || due[0].Reason != ReasonTakeover {
		t.Fatalf("due after the back-off: %+v", due)
	}
	if err := runner("lead_c").Run(ctx, due[0]); err != nil {
		t.Fatal(err)
	}
	checkOne("killed.example.test", rec, 3+reused)
}
