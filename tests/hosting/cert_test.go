package hosting

import (
	"context"
	"crypto/x509"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/internal/acmetest"
	"github.com/hostplane/hostplane/internal/dnstest"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/client"
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
	if _, err := cl.VerifyCustomDomain(ctx, id); api.StatusOf(err) != http.StatusUnprocessableEntity {
		t.Fatalf("verify before the DNS records: %v", err)
	}
	publish(t, dns, d.Records)
	if v, err := cl.VerifyCustomDomain(ctx, id); err != nil || v.Status != api.CustomDomainVerified {
		t.Fatalf("verify: %+v %v", v, err)
	}

	// The leader orders and installs it.
	issued := waitCert(t, w.client(2, w.key), id, certIssued, 40*time.Second)
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
	// The agent's first start with TLS wrote the TLS includes before it
	// started nginx, which read them: no reload (each one right after a
	// start is slow under load, and one failed an agent's start in CI).
	if log, _ := os.ReadFile(filepath.Join(w.env.Root, "nginx", "logs", "error.log")); strings.Contains(string(log), "reconfiguring") {
		t.Fatalf("the agent's first start with TLS reloaded nginx:\n%s", log)
	}
	return w, dns, pb, tlsAddr
}

// newSite creates a hosting account (user Prefix+suffix) whose own domain
// own-Prefix.zone resolves to the node, and names the custom domain
// shop-Prefix.zone the test attaches to it.
func newSite(t *testing.T, w *world, dns *dnstest.Server, suffix, zone string) (id, own, custom string) {
	t.Helper()
	own = "own-" + w.env.Prefix + "." + zone
	return addSite(t, w, dns, w.env.Prefix+suffix, own), own, "shop-" + w.env.Prefix + "." + zone
}

// siteWorld is an ACME world (newACMEWorld) with a first site of the
// world's API account, A (newSite, user <Prefix>a): where the tests of a
// name changing hands between customers start.
type siteWorld struct {
	*world
	dns     *dnstest.Server
	roots   *x509.CertPool // pebble's
	tlsAddr string
	idA     string         // A's hosting account
	ownA    string         // its own domain
	name    string         // shop-<Prefix>.zone, the name the test claims
	clA     *client.Client // A's API key on coordinator 1
}

// newSiteWorld is newACMEWorld(t, zone, coordinatorArgs...) and newSite(…, "a", zone).
func newSiteWorld(t *testing.T, zone string, coordinatorArgs ...string) *siteWorld {
	t.Helper()
	w, dns, pb, tlsAddr := newACMEWorld(t, zone, coordinatorArgs...)
	s := &siteWorld{world: w, dns: dns, roots: pb.Root(t), tlsAddr: tlsAddr}
	s.idA, s.ownA, s.name = newSite(t, w, dns, "a", zone)
	s.clA = w.client(1, w.key)
	return s
}

// addSite creates a hosting account of the world's API account (user, domain
// own), waits for its creation to succeed and has own resolve to the node.
func addSite(t *testing.T, w *world, dns *dnstest.Server, user, own string) (id string) {
	t.Helper()
	created := w.create(user, own)
	w.mustSucceed(created.Action.ID)
	dns.Add(t, own+". 60 IN A 127.0.0.1")
	return created.Hosting.ID
}

// writePage writes the index.html of user's site on the node.
func writePage(t *testing.T, w *world, user, text string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(w.env.Root, "sites", user, "public", "index.html"), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// customer is an API account other than the world's (another customer)
// with a hosting account of its own on the node.
type customer struct {
	accountID, key string
	id             string         // its hosting account
	cl             *client.Client // with key, on coordinator 2
}

// newCustomer creates the API account <Prefix>-<who>@example.com with
// scopes and, through the admin API, its hosting account (user, domain), and
// waits for that creation to succeed.
func newCustomer(t *testing.T, w *world, who, user, domain string, scopes ...string) customer {
	t.Helper()
	ctx := hostenv.Ctx(t)
	acc, key, err := w.c.NewAccount(ctx, w.env.Prefix+"-"+who+"@example.com", scopes...)
	if err != nil {
		t.Fatal(err)
	}
	c := customer{accountID: acc.ID, key: key, cl: w.client(2, key)}
	created, err := w.c.AnyAlive(nil).Admin().CreateHosting(ctx, api.AdminHostingCreateRequest{AccountID: acc.ID,
		Plan: "hosting-starter", Domain: domain, Username: user})
	if err != nil {
		t.Fatal(err)
	}
	c.id = created.Hosting.ID
	framework.WaitActionSuccess(t, c.cl, created.Action.ID, 60*time.Second)
	return c
}

// attachVerified attaches name to hosting account id as its custom domain
// (through cl), publishes the records it asks for in dns and verifies it;
// who names the customer in failures. It returns the custom domain as
// attached (its records).
func attachVerified(t *testing.T, cl *client.Client, dns *dnstest.Server, who, id, name string) api.CustomDomain {
	t.Helper()
	ctx := hostenv.Ctx(t)
	d, err := cl.SetCustomDomain(ctx, id, name, "")
	if err != nil {
		t.Fatalf("%s attaches %s: %v", who, name, err)
	}
	publish(t, dns, d.Records)
	if v, err := cl.VerifyCustomDomain(ctx, id); err != nil || v.Status != api.CustomDomainVerified {
		t.Fatalf("%s verifies %s: %+v %v", who, name, v, err)
	}
	return d
}

// waitServes waits until the node answers name with the page want over HTTP
// and over HTTPS (a certificate of name chaining to roots, from tlsAddr),
// and fails after timeout; detail, if not nil, adds to that failure.
func waitServes(t *testing.T, w *world, tlsAddr string, roots *x509.CertPool, name, want string, timeout time.Duration, detail func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		code, body := hostenv.Get(t, w.env.HTTPAddr, name, "/")
		resp, hbody, herr := framework.TryHTTPS(tlsAddr, name, roots)
		if code == http.StatusOK && body == want && herr == nil && resp.StatusCode == http.StatusOK && string(hbody) == want {
			return
		}
		if time.Now().After(deadline) {
			more := ""
			if detail != nil {
				more = "; " + detail()
			}
			t.Fatalf("%s %s after: want %q, HTTP %d %q, HTTPS %v %q%s", name, timeout, want, code, body, herr, hbody, more)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitHook waits up to 20 s for a webhook event typ whose data has key val
// (received by the world's receiver) and returns its data.
func (w *world) waitHook(t *testing.T, typ, key, val string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if d := w.hooks.find(typ, key, val); d != nil {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s webhook with %s %s", typ, key, val)
		}
		time.Sleep(100 * time.Millisecond)
	}
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

// certIssued is waitCert's condition for an issued certificate.
func certIssued(c *api.CertificateStatus) bool { return c != nil && c.Status == api.CertificateIssued }

// waitCert polls the custom domain of hosting account id through /v1 (cl)
// until ok holds.
func waitCert(t *testing.T, cl *client.Client, id string, ok func(*api.CertificateStatus) bool, timeout time.Duration) *api.CertificateStatus {
	t.Helper()
	return framework.PollFor(t, "certificate of "+id, timeout, 200*time.Millisecond, func(ctx context.Context) (*api.CertificateStatus, error) {
		d, err := cl.CustomDomain(ctx, id)
		return d.Certificate, err
	}, ok)
}
