package hosting

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/hostplane/hostplane/internal/acmetest"
	"github.com/hostplane/hostplane/internal/dnstest"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
	"github.com/hostplane/hostplane/tests/framework/freeport"
	"github.com/hostplane/hostplane/tests/framework/hostenv"
)

// TestCustomDomainCertificate: three coordinator processes ordering from
// pebble (a real ACME server) and a hosting agent process on real nginx:
// a custom domain attached through /v1 is verified against the test's own
// authoritative DNS, then the leader orders its certificate (HTTP-01
// answered by the node through nginx), the hosting.cert action installs it,
// the custom domain shows certificate issued with not_after, and an HTTPS
// request with that SNI gets a chain to pebble's root and the account's
// site. ssl/retry on an issued certificate renews it (a new certificate).
func TestCustomDomainCertificate(t *testing.T) {
	w, dns, pb, tlsAddr := newACMEWorld(t, "certs.test")
	ctx := hostenv.Ctx(t)
	start := time.Now()
	id, own, custom := newSite(t, w, dns, "c", "certs.test")
	cl := w.client(1, w.key)
	d, err := cl.SetCustomDomain(ctx, id, custom, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.VerifyCustomDomain(ctx, id); apiStatus(err) != http.StatusUnprocessableEntity {
		t.Fatalf("verify before the DNS records: %v", err)
	}
	publish(t, dns, d.Records)
	if v, err := cl.VerifyCustomDomain(ctx, id); err != nil || v.Status != api.CustomDomainVerified {
		t.Fatalf("verify: %+v %v", v, err)
	}

	// The leader orders and installs it.
	issued := waitCert(t, w, id, func(c *api.CertificateStatus) bool { return c != nil && c.Status == api.CertificateIssued }, 40*time.Second)
	if issued.NotAfter == nil || issued.NotAfter.Before(time.Now().Add(24*time.Hour)) {
		t.Fatalf("issued: %+v", issued)
	}
	t.Logf("certificate issued and installed %.1f s after the account was created", time.Since(start).Seconds())

	// HTTPS with that SNI: a chain to pebble's root, and the account's site.
	roots := pb.Root(t)
	resp, body := framework.GetHTTPS(t, tlsAddr, custom, roots)
	pcode, pbody := hostenv.Get(t, w.env.HTTPAddr, own, "/")
	if resp.StatusCode != pcode || string(body) != pbody {
		t.Fatalf("HTTPS %s is not the account's site: %d %q, own domain %d %q", custom, resp.StatusCode, body, pcode, pbody)
	}
	first := resp.TLS.PeerCertificates[0].SerialNumber.String()

	// ssl/retry renews it now: another certificate is served.
	if c, err := cl.RetryCertificate(ctx, id); err != nil || c.Certificate == nil {
		t.Fatalf("retry: %+v %v", c, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, _, err := framework.TryHTTPS(tlsAddr, custom, roots)
		if err == nil && resp.TLS.PeerCertificates[0].SerialNumber.String() != first {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no renewed certificate served 30 s after ssl/retry: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// newACMEWorld is a world whose coordinators order certificates from pebble
// (a real ACME server; no short-lived certificates) validated through the
// test's own authoritative DNS for zone, and whose agent serves HTTPS on
// tlsAddr; coordinatorArgs are more flags of the coordinators.
func newACMEWorld(t *testing.T, zone string, coordinatorArgs ...string) (w *world, dns *dnstest.Server, pb *acmetest.Pebble, tlsAddr string) {
	t.Helper()
	dns = dnstest.Start(t, zone)
	tlsAddr = freeport.Addr(t, "tcp")
	w = newWorldWith(t, worldOptions{
		coordinatorArgs: func(env *hostenv.Env) []string {
			_, port, _ := net.SplitHostPort(env.HTTPAddr)
			pb = acmetest.Start(t, dns.Addr, port, 90*24*time.Hour)
			return append([]string{"--acme-directory", pb.Dir, "--acme-ca-file", acmetest.RepoFile(t, ".bin/pebble-certs/pebble.minica.pem"),
				"--acme-interval", "300ms", "--dns-resolver", dns.Addr, "--dns-ns-port", dns.Port}, coordinatorArgs...)
		},
		agentArgs: []string{"-hosting-tls-listen", tlsAddr},
	})
	return w, dns, pb, tlsAddr
}

// newSite creates a hosting account (user Prefix+suffix) whose own domain
// own-Prefix.zone resolves to the node, and names the custom domain
// shop-Prefix.zone the test attaches to it.
func newSite(t *testing.T, w *world, dns *dnstest.Server, suffix, zone string) (id, own, custom string) {
	t.Helper()
	own = "own-" + w.env.Prefix + "." + zone
	created := w.create(w.env.Prefix+suffix, own)
	w.mustSucceed(created.Action.ID)
	dns.Add(t, own+". 60 IN A 127.0.0.1")
	return created.Hosting.ID, own, "shop-" + w.env.Prefix + "." + zone
}

// publish adds a custom domain's ownership TXT and address records to dns.
func publish(t *testing.T, dns *dnstest.Server, records []api.DNSRecord) {
	t.Helper()
	for _, r := range records {
		switch {
		case r.Type == "TXT":
			dns.Add(t, r.Name+". 60 IN TXT \""+r.Value+"\"")
		case r.Type == "A" || r.Type == "AAAA":
			dns.Add(t, r.Name+". 60 IN "+r.Type+" "+r.Value)
		}
	}
}

// waitCert polls the custom domain through /v1 until ok holds.
func waitCert(t *testing.T, w *world, id string, ok func(*api.CertificateStatus) bool, timeout time.Duration) *api.CertificateStatus {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		d, err := w.client(2, w.key).CustomDomain(ctx, id)
		cancel()
		if err == nil && ok(d.Certificate) {
			return d.Certificate
		}
		if time.Now().After(deadline) {
			t.Fatalf("certificate of %s after %s: %+v %v", id, timeout, d.Certificate, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
