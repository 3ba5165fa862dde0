package httpapi

import (
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/hostplane/hostplane/pkg/api"
)

// TestVerifyWithTheResolverDown: a custom domain's verify while the
// coordinator's DNS resolver does not answer is a 503 the customer can retry
// (Retry-After, code dns_unavailable), naming the domain but not the
// provider's resolver, and the custom domain stays pending. Before, it was a
// 500 internal_error, as if the request had hit a bug.
func TestVerifyWithTheResolverDown(t *testing.T) {
	s := newSrvAPI(t)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := pc.LocalAddr().String() // nothing listens there once closed
	pc.Close()
	s.a.cfg.DNSResolver = down
	acc, key := s.account(api.ScopeHostingRead, api.ScopeHostingWrite)
	base := "/v1/hosting/" + s.hostingAccount(acc, "ada", "ada.hosting.test") + "/custom-domain"
	if r := s.call(key, "PUT", base, `{"domain":"shop.example.test"}`); r.status != http.StatusOK {
		t.Fatalf("PUT: %d %s", r.status, r.body)
	}
	v := s.call(key, "POST", base+"/verify", "")
	if v.status != http.StatusServiceUnavailable || v.code() != "dns_unavailable" || v.header.Get("Retry-After") == "" ||
		!strings.Contains(v.msg(), "shop.example.test") || strings.Contains(string(v.body), down) || strings.Contains(string(v.body), "127.0.0.1") {
		t.Fatalf("verify with the resolver down: %d %s (Retry-After %q), want a 503 dns_unavailable naming the domain, not the resolver",
			v.status, v.body, v.header.Get("Retry-After"))
	}
	if r := s.call(key, "GET", base, ""); r.status != http.StatusOK || r.m["status"] != api.CustomDomainPendingDNS {
		t.Fatalf("the custom domain after the failed verify: %d %s", r.status, r.body)
	}
}
