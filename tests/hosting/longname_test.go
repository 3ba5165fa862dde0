package hosting

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/validate"
	"github.com/hostplane/hostplane/tests/framework"
	"github.com/hostplane/hostplane/tests/framework/hostenv"
)

// nameOf is a valid domain name of n bytes: labels of the letter c (63 at
// most) in front of suffix.
func nameOf(t *testing.T, c string, n int, suffix string) string {
	t.Helper()
	var labels []string
	for left := n - len(suffix); left > 0; {
		l := min(63, left)
		if left > 63 && left-63 < 2 { // leave a dot and one letter
			l = left - 2
		}
		labels = append(labels, strings.Repeat(c, l))
		left -= l + 1
	}
	name := strings.Join(labels, ".") + suffix
	if len(name) != n {
		t.Fatalf("nameOf(%d) is %d bytes", n, len(name))
	}
	return name
}

// TestLongestDomainServed (three coordinator processes, pebble, the test's
// own authoritative DNS, a hosting agent on real nginx): a hosting account
// on a domain of validate.MaxHostingDomain (235) bytes is created and its
// site served for that Host; a custom domain of 235 bytes is attached,
// verified, gets its certificate and is served over HTTPS with that SNI.
// One byte more is a 400 naming domain for the custom domain and the order,
// and leaves nothing on the node. (Before the bound, the API took any
// valid name up to 253 bytes: the node failed a 251-253-byte one
// (hosts/<name> through .<name>.tmp: ENAMETOOLONG), and could not write the
// certificate of one over 235.)
func TestLongestDomainServed(t *testing.T) {
	const zone = "long.test"
	w, dns, pb, tlsAddr := newACMEWorld(t, zone)
	ctx := hostenv.Ctx(t)
	suffix := "." + w.env.Prefix + "." + zone
	own := nameOf(t, "o", validate.MaxHostingDomain, suffix)
	id := addSite(t, w, dns, w.env.Prefix+"l", own)
	writePage(t, w, w.env.Prefix+"l", "the long one")
	if code, body := hostenv.Get(t, w.env.HTTPAddr, own, "/"); code != 200 || body != "the long one" {
		t.Fatalf("GET with Host %d bytes: %d %q", len(own), code, body)
	}

	cl := w.client(1, w.key)
	over := nameOf(t, "x", validate.MaxHostingDomain+1, suffix)
	if _, err := cl.SetCustomDomain(ctx, id, over, ""); api.StatusOf(err) != http.StatusBadRequest || !strings.Contains(err.Error(), `"domain"`) {
		t.Fatalf("a custom domain of %d bytes: %v, want a 400 naming domain", len(over), err)
	}
	_, err := w.c.AnyAlive(nil).Admin().CreateHosting(ctx, api.AdminHostingCreateRequest{AccountID: w.acct, Plan: "hosting-starter",
		Domain: over, Username: w.env.Prefix + "x"})
	if api.StatusOf(err) != http.StatusBadRequest || !strings.Contains(err.Error(), `"domain"`) {
		t.Fatalf("a hosting account on %d bytes: %v, want a 400 naming domain", len(over), err)
	}
	custom := nameOf(t, "c", validate.MaxHostingDomain, suffix)
	d, err := cl.SetCustomDomain(ctx, id, custom, "")
	if err != nil {
		t.Fatalf("a custom domain of %d bytes: %v", len(custom), err)
	}
	publish(t, dns, d.Records)
	dns.Add(t, custom+". 60 IN A 127.0.0.1")
	if v, err := cl.VerifyCustomDomain(ctx, id); err != nil {
		t.Fatalf("verify: %+v %v", v, err)
	}
	waitCert(t, w.client(2, w.key), id, certIssued, 60*time.Second)
	resp, body := framework.GetHTTPS(t, tlsAddr, custom, pb.Root(t))
	if resp.StatusCode != 200 || string(body) != "the long one" {
		t.Fatalf("HTTPS with an SNI of %d bytes: %d %q", len(custom), resp.StatusCode, body)
	}
	l := func(parts ...string) string { return filepath.Join(append([]string{w.env.Root}, parts...)...) }
	for _, p := range []string{l("hosts", own), l("hosts", custom), l("certs", custom+".pem")} {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("the node lacks %s: %v", p, err)
		}
	}
	for _, dir := range []string{l("hosts"), l("certs")} {
		es, _ := os.ReadDir(dir)
		for _, e := range es {
			if strings.Contains(e.Name(), strings.Repeat("x", 40)) || strings.Contains(e.Name(), ".tmp") {
				t.Errorf("left on the node: %s/%s", dir, e.Name())
			}
		}
	}
}
