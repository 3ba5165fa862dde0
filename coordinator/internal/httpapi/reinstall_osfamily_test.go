package httpapi

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestReinstallOSOfTemplate: a reinstall's "os" that contradicts the family
// its template records (a family-version name such as debian-12, or an
// operator's label of the template) is a 400 naming os that starts nothing,
// as an order's os_family is (b360856); the same family in any case, or none,
// is taken, and a template that records none takes any. Before, a reinstall
// {"osTemplate":"debian-12","os":"windows"} left the server showing os
// "windows", which the order refuses.
func TestReinstallOSOfTemplate(t *testing.T) {
	s := newSrvAPI(t)
	adm := s.a.ServerAdmin(http.NotFoundHandler(), ServerAdminConfig{Nodes: NodeDeps{Live: func(string) (time.Time, bool) { return time.Now(), true }}})
	s.mu.Lock()
	s.templates = []string{"debian-12", "ubuntu-24.04", "base", "u2404"}
	s.mu.Unlock()
	acc, key := s.account(allServerScopes...)
	id := s.server(acc)
	path := "/v1/servers/" + id + "/reinstall"
	shows := func(template, os string) {
		t.Helper()
		if d := s.call(key, "GET", "/v1/servers/"+id, ""); d.m["os_template"] != template || d.m["os"] != os {
			t.Fatalf("server: %s, want os_template %q and os %q", d.body, template, os)
		}
	}
	refused := func(body string) {
		t.Helper()
		d := s.call(key, "GET", "/v1/servers/"+id, "")
		r := s.call(key, "POST", path, body)
		if r.status != http.StatusBadRequest || !strings.Contains(string(r.body), `field \"os\"`) {
			t.Errorf("reinstall %s: %d %s, want a 400 naming os", body, r.status, r.body)
		}
		if r.status == http.StatusAccepted {
			s.finish(actionID(t, r), true) // so that the next reinstall is not refused for it
		}
		if after := s.call(key, "GET", "/v1/servers/"+id, ""); string(after.body) != string(d.body) {
			t.Errorf("refused reinstall %s changed the server: %s → %s", body, d.body, after.body)
		}
	}
	taken := func(body, template, os string) {
		t.Helper()
		s.finish(actionID(t, s.call(key, "POST", path, body)), true)
		shows(template, os)
	}
	refused(`{"osTemplate":"debian-12","os":"windows"}`)
	refused(`{"osTemplate":"ubuntu-24.04","os":"debian"}`)
	taken(`{"osTemplate":"debian-12","os":"Debian"}`, "debian-12", "Debian")
	taken(`{"osTemplate":"ubuntu-24.04"}`, "ubuntu-24.04", "ubuntu")
	taken(`{"osTemplate":"base","os":"windows"}`, "base", "windows") // base records no family
	refused(`{"osTemplate":"debian-12","os":"windows"}`)

	// An operator's label records a family: u2404 is then "ubuntu".
	w := httptest.NewRecorder()
	adm.ServeHTTP(w, httptest.NewRequest("PUT", "/admin/os-templates/u2404", strings.NewReader(`{"family":"ubuntu","version":"24.04"}`)))
	if w.Code != http.StatusOK {
		t.Fatalf("label u2404: %d %s", w.Code, w.Body)
	}
	refused(`{"osTemplate":"u2404","os":"u2404"}`)
	taken(`{"osTemplate":"u2404","os":"Ubuntu"}`, "u2404", "Ubuntu")
}
