package framework

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hostplane/hostplane/tests/eppd"
)

// TestEPPDAdminReadsCheckTheStatusFirst: a registry admin read answered
// other than 200 fails the test naming the answer's status and body (the
// registry's reason), even when the body would decode; a 404 domain is
// none, a 200 decodes. Before, Domain and Transactions decoded first and
// failed with the status alone, the registry's reason dropped.
func TestEPPDAdminReadsCheckTheStatusFirst(t *testing.T) {
	status, body := http.StatusOK, `[]`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	defer srv.Close()
	e := &EPPD{AdminURL: srv.URL}
	on := func(fn func(*EPPD)) string {
		return failure(func(tb testing.TB) { e.t = tb; fn(e) })
	}

	status, body = http.StatusInternalServerError, `[]`
	if got := on(func(e *EPPD) { e.Transactions("", "") }); !strings.Contains(got, "→ 500 []") {
		t.Errorf("transactions answered 500 with a body that decodes: failed with %q; want the answer named", got)
	}
	status, body = http.StatusServiceUnavailable, `{"name":"a.test","reason":"store locked"}`
	if got := on(func(e *EPPD) { e.Domain("a.test") }); !strings.Contains(got, "→ 503") || !strings.Contains(got, "store locked") {
		t.Errorf("domain answered 503: failed with %q; want the status and the registry's reason", got)
	}
	status, body = http.StatusNotFound, `not found`
	d := &eppd.AdminDomain{Name: "unset"}
	if got := on(func(e *EPPD) { d = e.Domain("a.test") }); got != "" || d != nil {
		t.Errorf("domain answered 404: failed with %q, domain %v; want none", got, d)
	}
	status, body = http.StatusOK, `{"name":"a.test"}`
	if got := on(func(e *EPPD) { d = e.Domain("a.test") }); got != "" || d == nil || d.Name != "a.test" {
		t.Errorf("domain answered 200: failed with %q, domain %+v", got, d)
	}
	status, body = http.StatusOK, `[{"verb":"create"`
	if got := on(func(e *EPPD) { e.Transactions("", "") }); !strings.Contains(got, "decode") {
		t.Errorf("transactions answered 200 cut short: failed with %q; want the decode error", got)
	}
}
