package hosting

import (
	"context"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
	"github.com/hostplane/hostplane/tests/framework/hostenv"
)

// TestLeaderKilledDuringACMEOrder: three coordinator processes, pebble and a
// hosting agent on real nginx. The leader orders the certificate of a
// verified custom domain; while pebble validates the HTTP-01 challenge (its
// DNS lookup of the name held by the test's DNS) the leader is SIGKILLed.
// The next leader finishes that very order: pebble got one order and issued
// exactly one certificate for the name, and it is served over HTTPS with that SNI, chaining to
// pebble's root. Then the hosting agent is killed mid-attach of the renewed
// certificate: restarted, the install completes once. (Before orders were resumed by their URL, the next leader
// waited 10 minutes and ordered again.)
func TestLeaderKilledDuringACMEOrder(t *testing.T) {
	w, dns, pb, tlsAddr := newACMEWorld(t, "kill.test")
	ctx := hostenv.Ctx(t)
	id, _, custom := newSite(t, w, dns, "k", "kill.test")

	leader := w.c.WaitLeader(20 * time.Second)
	cl := w.client((leader+1)%3, w.key)
	d, err := cl.SetCustomDomain(ctx, id, custom, "")
	if err != nil {
		t.Fatal(err)
	}
	publish(t, dns, d.Records)
	if v, err := cl.VerifyCustomDomain(ctx, id); err != nil || v.Status != api.CustomDomainVerified {
		t.Fatalf("verify: %+v %v", v, err)
	}
	// From now on pebble's lookup of the name waits: the order is created,
	// its challenge answered on the node and being validated.
	arrived, release := dns.Hold(t, custom)
	select {
	case <-arrived:
	case <-time.After(30 * time.Second):
		t.Fatal("pebble did not validate the challenge within 30 s of the verification")
	}
	killed := time.Now()
	w.c.Kill(leader)
	release()
	t.Logf("leader %d SIGKILLed while pebble validated the HTTP-01 challenge of %s", leader, custom)

	alive := (leader + 1) % 3
	cert := waitCert(t, w.client(alive, w.key), id, certIssued, 40*time.Second)
	t.Logf("certificate issued and installed %.1f s after the leader was killed (not_after %s)", time.Since(killed).Seconds(), cert.NotAfter)

	roots := pb.Root(t)
	resp, _ := framework.GetHTTPS(t, tlsAddr, custom, roots)
	served := resp.TLS.PeerCertificates[0].SerialNumber

	// Another pass or two of the job: still one certificate.
	time.Sleep(2 * time.Second)
	issued, orders := pb.Issued(t), pb.Orders(t)
	if len(issued) != 1 {
		t.Fatalf("pebble issued %d certificates for %s, want exactly 1: %q", len(issued), custom, issued)
	}
	if len(orders) != 1 {
		t.Fatalf("pebble got %d orders, want the one the killed leader created (resumed by the next): %q", len(orders), orders)
	}
	if !sameSerial(issued[0], served) {
		t.Fatalf("served serial %x is not the one pebble issued: %s", served, issued[0])
	}
	t.Logf("pebble: %s; %s; served serial %x", orders[0], issued[0], served)

	// The agent killed mid-attach (hosting.cert, after routing the domain,
	// before installing the certificate): restarted, the install completes
	// once — the action sent again is answered "interrupted" from the
	// journal (the key is never journaled) and the coordinator sends it once
	// more with the key. The renewed certificate is served; no new order.
	w.agent.Stop()
	w.agent.Start(api.NodeOpHostingCert + ":routed")
	w.c.WaitNode(w.nodeID, 30*time.Second, "connected", func(n api.AgentNode) bool { return n.Connected })
	if _, err := w.client(alive, w.key).RetryCertificate(ctx, id); err != nil {
		t.Fatalf("ssl/retry: %v", err)
	}
	w.agent.WaitExit(40 * time.Second)
	w.agent.Start("")
	// 100 s: the coordinator sends the install again at once when the agent
	// answers "interrupted" (about 4 s in passing runs); one run of six did
	// not see the renewed certificate within 40 s, unexplained, and the
	// coordinator's fallback is its 1-minute install back-off. The guarantee
	// checked here is that the install completes, once.
	deadline := time.Now().Add(100 * time.Second)
	for {
		resp, _, err := framework.TryHTTPS(tlsAddr, custom, roots)
		if err == nil && resp.TLS.PeerCertificates[0].SerialNumber.Cmp(served) != 0 {
			served = resp.TLS.PeerCertificates[0].SerialNumber
			break
		}
		if time.Now().After(deadline) {
			cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			d, derr := w.client(alive, w.key).CustomDomain(cctx, id)
			cancel()
			t.Fatalf("the renewed certificate is not served 100 s after the agent restarted mid-attach: %v; certificate %+v %v; pebble %q\n%s",
				err, d.Certificate, derr, pb.Issued(t), framework.Tail(w.agent.Log, 30))
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(time.Second)
	issued, orders = pb.Issued(t), pb.Orders(t)
	if len(issued) != 2 || len(orders) != 2 || !sameSerial(issued[1], served) {
		t.Fatalf("after the renewal with the agent killed mid-attach, pebble has %d orders and %d certificates (want 2 and 2, the second served as %x): %q", len(orders), len(issued), served, issued)
	}
	cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if d, err := w.client(alive, w.key).CustomDomain(cctx, id); err != nil || d.Certificate == nil || d.Certificate.Status != api.CertificateIssued {
		t.Fatalf("status after the agent restarted mid-attach: %+v %v", d, err)
	}
}

// sameSerial tells whether pebble's log line "Issued certificate serial S
// for order O" names serial (S in hex, possibly with leading zeros).
func sameSerial(line string, serial *big.Int) bool {
	f := strings.Fields(line)
	if len(f) < 4 {
		return false
	}
	n, ok := new(big.Int).SetString(f[3], 16)
	return ok && n.Cmp(serial) == 0
}
