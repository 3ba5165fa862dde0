package httpapi

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/ids"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/internal/dnstest"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/validate"
	bolt "go.etcd.io/bbolt"
)

// hostingAccount makes an active hosting account of acc (domain: its own
// domain) on a hosting node.
func (s *srvAPI) hostingAccount(acc, user, domain string) string {
	s.t.Helper()
	now := time.Now()
	if !s.nodeEnrolled("hv-web") {
		caExists := false
		_ = s.node.FSM.View(func(tx *bolt.Tx) error { caExists = store.Read(tx).NodeCAExists(); return nil })
		if !caExists {
			s.apply(fsm.CmdNodeCAInit, fsm.NodeCAInit{CertDER: []byte{1}, SealedKey: "v1.x", Fingerprint: "fp"})
		}
		s.apply(fsm.CmdNodeTokenCreate, fsm.NodeTokenCreate{ID: "jt_web", Hash: "hw", ExpiresAt: now.Add(time.Hour)})
		s.apply(fsm.CmdNodeEnrol, fsm.NodeEnrol{TokenID: "jt_web", TokenHash: "hw", NodeID: "hv-web", CertSerial: "sw", CertNotAfter: now.Add(24 * time.Hour)})
		s.apply(fsm.CmdNodeHello, fsm.NodeHello{NodeID: "hv-web", CertSerial: "sw", Roles: []string{api.RoleHosting}, ProtocolVersion: 103})
	}
	id := ids.New("hst", now)
	h := store.HostingAccount{HostingAccount: api.HostingAccount{ID: id, Username: user, Domain: domain, Plan: "hosting-starter", PHPVersion: "8.2"},
		AccountID: acc, NodeID: "hv-web"}
	act := store.Action{Action: api.Action{ID: ids.New("act", now), Command: api.ActionHostingCreate, ResourceID: id},
		NodeID: "hv-web", Target: user, Deadline: now.Add(time.Hour)}
	s.apply(fsm.CmdHostingCreate, fsm.HostingCreate{Hosting: h, Action: act})
	s.finish(act.ID, true)
	return id
}

func (s *srvAPI) nodeEnrolled(id string) bool {
	ok := false
	_ = s.node.FSM.View(func(tx *bolt.Tx) error {
		ok = store.Read(tx).AgentNodeExists(id)
		return nil
	})
	return ok
}

// TestCustomDomainDNSVerification: attach a custom domain, get the records
// to create, verify fails naming what is missing while the (test's own,
// authoritative) DNS lacks them, succeeds once they are there; a domain
// belongs to one account in the cluster (409); bad names are a 400 naming
// the field with nothing stored; detach frees the name.
func TestCustomDomainDNSVerification(t *testing.T) {
	s := newSrvAPI(t)
	dns := dnstest.Start(t, "example.test", "hosting.test")
	dns.Add(t, "ada.hosting.test. 60 IN A 192.0.2.10") // the account's own domain: its node
	s.a.cfg.DNSResolver, s.a.cfg.DNSNSPort = dns.Addr, dns.Port
	scopes := []string{api.ScopeHostingRead, api.ScopeHostingWrite}
	acc, key := s.account(scopes...)
	hst := s.hostingAccount(acc, "ada", "ada.hosting.test")
	base := "/v1/hosting/" + hst + "/custom-domain"

	if r := s.call(key, "GET", base, ""); r.status != http.StatusNotFound {
		t.Fatalf("no custom domain yet: %d %s", r.status, r.body)
	}
	for _, bad := range []string{`{"domain":"../evil"}`, `{"domain":"SHOP.example.test.."}`, `{"domain":"*.example.test"}`,
		`{"domain":"192.0.2.1"}`, `{"domain":"shop.example.test.."}`, `{"domain":"shop.example.test\nx"}`, `{"domain":""}`, `{}`,
		`{"domain":"shop.example.test","x":1}`} {
		r := s.call(key, "PUT", base, bad)
		if r.status != http.StatusBadRequest || (!strings.Contains(r.msg(), "domain") && !strings.Contains(r.msg(), "x")) {
			t.Errorf("PUT %s: %d %s", bad, r.status, r.body)
		}
	}
	if r := s.call(key, "GET", base, ""); r.status != http.StatusNotFound {
		t.Fatalf("a refused PUT stored something: %d", r.status)
	}

	r := s.call(key, "PUT", base, `{"domain":"shop.example.test"}`)
	if r.status != http.StatusOK || r.m["status"] != api.CustomDomainPendingDNS || r.m["domain"] != "shop.example.test" {
		t.Fatalf("PUT: %d %s", r.status, r.body)
	}
	recs, _ := r.m["records"].([]any)
	var token string
	got := map[string]string{}
	for _, x := range recs {
		m := x.(map[string]any)
		got[m["type"].(string)] = m["name"].(string) + " " + m["value"].(string)
		if m["type"] == "TXT" {
			token = m["value"].(string)
		}
	}
	if got["TXT"] != "_hostplane-verify.shop.example.test "+token || !strings.HasPrefix(token, "hpv-") ||
		got["A"] != "shop.example.test 192.0.2.10" || got["CNAME"] != "shop.example.test ada.hosting.test" {
		t.Fatalf("records %v", got)
	}
	// The same PUT again: the same token.
	if r2 := s.call(key, "PUT", base, `{"domain":"shop.example.test"}`); r2.status != 200 || !strings.Contains(string(r2.body), token) {
		t.Fatalf("PUT again: %d %s", r2.status, r2.body)
	}

	v := s.call(key, "POST", base+"/verify", "")
	if v.status != http.StatusUnprocessableEntity || !strings.Contains(v.msg(), "TXT record _hostplane-verify.shop.example.test is missing") ||
		!strings.Contains(v.msg(), "no A/AAAA record for shop.example.test") {
		t.Fatalf("verify without records: %d %s", v.status, v.body)
	}
	dns.Add(t, `_hostplane-verify.shop.example.test. 60 IN TXT "`+token+`"`)
	dns.Add(t, "shop.example.test. 60 IN A 198.51.100.9")
	v = s.call(key, "POST", base+"/verify", "")
	if v.status != http.StatusUnprocessableEntity || !strings.Contains(v.msg(), "A record shop.example.test points to 198.51.100.9, not 192.0.2.10") {
		t.Fatalf("verify with a wrong A: %d %s", v.status, v.body)
	}
	dns.Remove("shop.example.test", "A")
	dns.Add(t, "shop.example.test. 60 IN A 192.0.2.10")
	v = s.call(key, "POST", base+"/verify", "")
	if v.status != http.StatusOK || v.m["status"] != api.CustomDomainVerified || v.m["verified_at"] == nil {
		t.Fatalf("verify: %d %s", v.status, v.body)
	}

	// Another account cannot take the name, nor anyone the account's own
	// domain: a 409 naming the field, as verify's conflict does.
	acc2, key2 := s.account(scopes...)
	hst2 := s.hostingAccount(acc2, "bob", "bob.hosting.test")
	for _, d := range []string{"shop.example.test", "ada.hosting.test"} {
		if r := s.call(key2, "PUT", "/v1/hosting/"+hst2+"/custom-domain", `{"domain":"`+d+`"}`); r.status != http.StatusConflict ||
			r.code() != "conflict" || !strings.Contains(r.msg(), `field "domain": domain `+d) {
			t.Fatalf("second account takes %s: %d %s, want a 409 naming field \"domain\"", d, r.status, r.body)
		}
	}
	// Nor read or detach it.
	if r := s.call(key2, "DELETE", base, ""); r.status != http.StatusNotFound {
		t.Fatalf("other account's DELETE: %d", r.status)
	}
	if r := s.call(key, "DELETE", base, ""); r.status != http.StatusNoContent {
		t.Fatalf("DELETE: %d %s", r.status, r.body)
	}
	if r := s.call(key2, "PUT", "/v1/hosting/"+hst2+"/custom-domain", `{"domain":"shop.example.test"}`); r.status != http.StatusOK {
		t.Fatalf("detached name not free: %d %s", r.status, r.body)
	}
	// An internationalised name is stored in its ASCII form.
	if r := s.call(key, "PUT", base, `{"domain":"bücher.example.test"}`); r.status != 200 || r.m["domain"] != "xn--bcher-kva.example.test" {
		t.Fatalf("IDN: %d %s", r.status, r.body)
	}
}

func FuzzDecodeCustomDomain(f *testing.F) {
	for _, s := range []string{`{"domain":"shop.example.com"}`, `{"domain":"bücher.example"}`, `{"domain":"../x"}`, `{}`, `{"domain":1}`, `null`,
		`{"domain":"Shop.Example.COM."}`, `{"domain":"shop.example.com.."}`, `{"domain":"."}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		d, err := DecodeCustomDomain(body)
		if err != nil {
			return
		}
		if a, verr := validate.HostingDomain(d); verr != nil || a != d || strings.Trim(d, "abcdefghijklmnopqrstuvwxyz0123456789-.") != "" {
			t.Fatalf("accepted %q as %q", body, d)
		}
		if other, err := DecodeCustomDomain([]byte(`{"domain":"` + otherSpelling(d) + `"}`)); err != nil || other != d {
			t.Fatalf("%q spelled %q decodes to %q %v", d, otherSpelling(d), other, err)
		}
	})
}

// TestCertificateRetry: POST …/ssl/retry needs a custom domain (409
// no_custom_domain: the account exists, a 404 read as it gone) that is
// verified (409), is
// refused with 429 retry_limited once the name failed validation 4 times in
// the last hour, and otherwise makes a failed certificate due now, shown in
// the custom domain's certificate status; another account's hosting is a 404.
func TestCertificateRetry(t *testing.T) {
	s := newSrvAPI(t)
	acc, key := s.account(api.ScopeHostingRead, api.ScopeHostingWrite)
	hst := s.hostingAccount(acc, "ada", "ada.hosting.test")
	retry := "/v1/hosting/" + hst + "/ssl/retry"
	if r := s.call(key, "POST", retry, ""); r.status != http.StatusConflict || !strings.Contains(string(r.body), "no_custom_domain") {
		t.Fatalf("retry without a custom domain: %d %s", r.status, r.body)
	}
	s.apply(fsm.CmdCustomDomainSet, fsm.CustomDomainSet{HostingID: hst, AccountID: acc, Domain: "shop.example.test", Token: "t",
		Records: []api.DNSRecord{{Type: "TXT", Name: "_hostplane-verify.shop.example.test", Value: "t"}}})
	if r := s.call(key, "POST", retry, ""); r.status != http.StatusConflict || !strings.Contains(string(r.body), "verify") {
		t.Fatalf("retry of an unverified domain: %d %s", r.status, r.body)
	}
	s.apply(fsm.CmdCustomDomainVerified, fsm.CustomDomainVerified{HostingID: hst, AccountID: acc, Domain: "shop.example.test"})
	fail := func(order string) {
		s.apply(fsm.CmdCertOrderStart, fsm.CertOrderStart{HostingID: hst, Domain: "shop.example.test", OrderID: order, Until: time.Now().Add(time.Hour)})
		s.apply(fsm.CmdCertFailed, fsm.CertFailed{HostingID: hst, Domain: "shop.example.test", OrderID: order,
			Reason: "urn:ietf:params:acme:error:connection: no answer", RetryAt: time.Now().Add(time.Hour)})
	}
	fail("o1")
	r := s.call(key, "POST", retry, "")
	if r.status != http.StatusOK {
		t.Fatalf("retry: %d %s", r.status, r.body)
	}
	c, _ := r.m["certificate"].(map[string]any)
	at, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(c["retry_at"]))
	if c["status"] != api.CertificateFailed || !strings.Contains(fmt.Sprint(c["reason"]), "connection") || time.Until(at) > time.Minute {
		t.Fatalf("certificate after the retry: %v", c)
	}
	if r := s.call(key, "GET", "/v1/hosting/"+hst+"/custom-domain", ""); !strings.Contains(string(r.body), `"certificate"`) || strings.Contains(string(r.body), "sealed") {
		t.Fatalf("custom domain: %s", r.body)
	}
	// The hosting detail shows the custom domain and its certificate.
	if r := s.call(key, "GET", "/v1/hosting/"+hst, ""); r.status != 200 || !strings.Contains(string(r.body), `"custom_domain":{"domain":"shop.example.test","status":"verified","certificate":{"status":"failed"`) {
		t.Fatalf("hosting detail: %d %s", r.status, r.body)
	}
	for _, o := range []string{"o2", "o3", "o4"} {
		fail(o)
	}
	if r := s.call(key, "POST", retry, ""); r.status != http.StatusTooManyRequests || !strings.Contains(string(r.body), "retry_limited") {
		t.Fatalf("retry after 4 failures in an hour: %d %s", r.status, r.body)
	}
	_, key2 := s.account(api.ScopeHostingWrite)
	if r := s.call(key2, "POST", retry, ""); r.status != http.StatusNotFound {
		t.Fatalf("another account's retry: %d %s", r.status, r.body)
	}
}

// TestLapsedClaimNeedsEveryNameserver: another customer's verified custom
// domain is attachable once its ownership token is gone from the name's
// DNS, which only every nameserver answering shows: with one silent (ns2,
// where nothing listens), the PUT and the verify of a second account are a
// 409 naming the domain and the name stays; with every one answering, both
// go through (pending, then verified: the name moved).
func TestLapsedClaimNeedsEveryNameserver(t *testing.T) {
	s := newSrvAPI(t)
	s.apply(fsm.CmdClusterLevel, fsm.ClusterLevel{Level: 2})
	dns := dnstest.Start(t, "example.test", "hosting.test")
	dns.Add(t, "ada.hosting.test. 60 IN A 192.0.2.10")
	dns.Add(t, "bob.hosting.test. 60 IN A 192.0.2.10")
	s.a.cfg.DNSResolver, s.a.cfg.DNSNSPort = dns.Addr, dns.Port
	scopes := []string{api.ScopeHostingRead, api.ScopeHostingWrite}
	accA, keyA := s.account(scopes...)
	accB, keyB := s.account(scopes...)
	baseA := "/v1/hosting/" + s.hostingAccount(accA, "ada", "ada.hosting.test") + "/custom-domain"
	baseB := "/v1/hosting/" + s.hostingAccount(accB, "bob", "bob.hosting.test") + "/custom-domain"
	const name = "shop.example.test"
	token := func(r reply) string {
		t.Helper()
		for _, x := range r.m["records"].([]any) {
			if m := x.(map[string]any); m["type"] == "TXT" {
				return m["value"].(string)
			}
		}
		t.Fatalf("no TXT record in %s", r.body)
		return ""
	}
	r := s.call(keyA, "PUT", baseA, `{"domain":"`+name+`"}`)
	if r.status != 200 {
		t.Fatalf("A's PUT: %d %s", r.status, r.body)
	}
	dns.Add(t, `_hostplane-verify.shop.example.test. 60 IN TXT "`+token(r)+`"`)
	dns.Add(t, name+". 60 IN A 192.0.2.10")
	if v := s.call(keyA, "POST", baseA+"/verify", ""); v.status != 200 {
		t.Fatalf("A's verify: %d %s", v.status, v.body)
	}
	// A's token leaves the nameserver that answers; ns2 is silent.
	dns.Remove("_hostplane-verify."+name, "TXT")
	ns2 := func(silent bool) {
		dns.Remove("example.test", "NS")
		dns.Add(t, "example.test. 60 IN NS ns1.example.test.")
		if silent {
			dns.Add(t, "example.test. 60 IN NS ns2.example.test.")
			dns.Add(t, "ns2.example.test. 60 IN A 127.0.0.2")
		}
	}
	ns2(true)
	wantHeld := func(what string, r reply) {
		t.Helper()
		if r.status != http.StatusConflict || !strings.Contains(r.msg(), `field "domain"`) || !strings.Contains(r.msg(), "ns2.example.test did not answer") {
			t.Fatalf("%s with ns2 silent: %d %s, want a 409 naming the domain and the silent nameserver", what, r.status, r.body)
		}
		if a := s.call(keyA, "GET", baseA, ""); a.m["status"] != api.CustomDomainVerified {
			t.Fatalf("%s with ns2 silent: A's custom domain %s", what, a.body)
		}
	}
	wantHeld("B's PUT", s.call(keyB, "PUT", baseB, `{"domain":"`+name+`"}`))
	ns2(false)
	r = s.call(keyB, "PUT", baseB, `{"domain":"`+name+`"}`)
	if r.status != 200 || r.m["status"] != api.CustomDomainPendingDNS {
		t.Fatalf("B's PUT, every nameserver answering: %d %s, want pending", r.status, r.body)
	}
	dns.Add(t, `_hostplane-verify.shop.example.test. 60 IN TXT "`+token(r)+`"`)
	ns2(true)
	wantHeld("B's verify", s.call(keyB, "POST", baseB+"/verify", ""))
	ns2(false)
	if v := s.call(keyB, "POST", baseB+"/verify", ""); v.status != 200 || v.m["status"] != api.CustomDomainVerified {
		t.Fatalf("B's verify, every nameserver answering: %d %s, want verified (the name moved)", v.status, v.body)
	}
}

// TestCustomDomainChangeWhenTheAccountsActionCannotBeRead: a custom
// domain's PUT and verify first read the hosting account's action (is its
// delete under way? deleteUnderway); a read that fails other than "not
// found" (a broken record) answers 500 internal_error in the JSON envelope
// and changes nothing, where it read as "no delete under way" and the
// request went on before fb12418. Below semantics level 6 the handler is
// all that refuses (the apply checks from level 6).
func TestCustomDomainChangeWhenTheAccountsActionCannotBeRead(t *testing.T) {
	for _, level := range []uint16{fsm.LevelTicketReplyIdem, fsm.MaxLevel} {
		t.Run(fmt.Sprintf("level-%d", level), func(t *testing.T) {
			s := newSrvAPI(t)
			s.apply(fsm.CmdClusterLevel, fsm.ClusterLevel{Level: level})
			dns := dnstest.Start(t, "example.test", "hosting.test")
			dns.Add(t, "ada.hosting.test. 60 IN A 192.0.2.10")
			s.a.cfg.DNSResolver, s.a.cfg.DNSNSPort = dns.Addr, dns.Port
			acc, key := s.account(api.ScopeHostingRead, api.ScopeHostingWrite)
			hst := s.hostingAccount(acc, "ada", "ada.hosting.test")
			base := "/v1/hosting/" + hst + "/custom-domain"
			if r := s.call(key, "PUT", base, `{"domain":"shop.example.test"}`); r.status != http.StatusOK {
				t.Fatalf("PUT: %d %s", r.status, r.body)
			}
			before := s.call(key, "GET", base, "")
			if before.status != http.StatusOK || before.m["status"] != api.CustomDomainPendingDNS {
				t.Fatalf("GET: %d %s", before.status, before.body)
			}

			// The account names an action under way whose record does not
			// decode.
			editState(t, s.whAPI, func(tx *bolt.Tx) error {
				h, err := store.Read(tx).HostingAccountByID(hst)
				if err != nil {
					return err
				}
				h.ActionID = ids.New("act", time.Now())
				if err := tx.Bucket(store.BucketActions).Put([]byte(h.ActionID), []byte("{not json")); err != nil {
					return err
				}
				return store.PutJSON(tx, store.BucketHosting, store.OwnedKey(acc, hst), h)
			})
			for _, c := range []struct{ method, path, body string }{
				{"PUT", base, `{"domain":"other.example.test"}`},
				{"POST", base + "/verify", ""},
			} {
				r := s.call(key, c.method, c.path, c.body)
				if r.status != http.StatusInternalServerError || r.code() != "internal_error" || r.m["request_id"] == nil ||
					r.header.Get("Content-Type") != "application/json" {
					t.Fatalf("%s %s with the account's action unreadable: %d %q %s, want a 500 internal_error envelope",
						c.method, c.path, r.status, r.header.Get("Content-Type"), r.body)
				}
			}
			if after := s.call(key, "GET", base, ""); after.status != http.StatusOK || string(after.body) != string(before.body) {
				t.Fatalf("custom domain after the refused PUT and verify: %d %s, was %s", after.status, after.body, before.body)
			}
		})
	}
}
