package httpapi

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/pkg/api"
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

// TestAdminServerOSOfTemplate: an operator's server create (hostplanectl
// server create --os) is checked as an order's os_family and a reinstall's
// os are: an "os" other than the family its template records is a 400
// naming os that places nothing; the family in any case, none, or any "os"
// for a template recording none (base) is taken. Before, {"template":
// "debian-12","os":"windows"} placed a server showing os "windows".
func TestAdminServerOSOfTemplate(t *testing.T) {
	s := newSrvAPI(t)
	adm := s.a.ServerAdmin(http.NotFoundHandler(), ServerAdminConfig{Nodes: NodeDeps{Live: func(string) (time.Time, bool) { return time.Now(), true }}})
	s.mu.Lock()
	s.templates = []string{"debian-12", "base", "u2404"}
	s.mu.Unlock()
	acc, _ := s.account(allServerScopes...)
	s.apply(fsm.CmdNodeHello, fsm.NodeHello{NodeID: "hv-secret-node", CertSerial: "s1", Roles: []string{"kvm"}, ProtocolVersion: 103,
		Capacity: api.AgentNodeCapacity{VCPUs: 64, MemoryBytes: 64 << 30, DiskBytes: 1 << 40}})
	admin := func(method, path, body string) (int, string) {
		t.Helper()
		w := httptest.NewRecorder()
		adm.ServeHTTP(w, httptest.NewRequest(method, path, strings.NewReader(body)))
		return w.Code, w.Body.String()
	}
	servers := func() string { _, b := admin("GET", "/admin/servers?account="+acc, ""); return b }
	create := func(template, os string) string {
		body := `{"account_id":"` + acc + `","plan":"nano","template":"` + template + `"`
		if os != "" {
			body += `,"os":"` + os + `"`
		}
		return body + "}"
	}
	refused := func(template, os string) {
		t.Helper()
		before := servers()
		if code, out := admin("POST", "/admin/servers", create(template, os)); code != http.StatusBadRequest || !strings.Contains(out, `field \"os\"`) {
			t.Errorf("admin create %s with os %q: %d %s, want a 400 naming os", template, os, code, out)
		}
		if after := servers(); after != before {
			t.Errorf("refused create changed the servers: %s → %s", before, after)
		}
	}
	taken := func(template, os, want string) {
		t.Helper()
		code, out := admin("POST", "/admin/servers", create(template, os))
		if code != http.StatusCreated || !strings.Contains(out, `"os":"`+want+`"`) {
			t.Errorf("admin create %s with os %q: %d %s, want 201 showing os %q", template, os, code, out, want)
		}
	}
	refused("debian-12", "windows")
	refused("debian-12", "ubuntu")
	refused("debian-12", "debian;x") // the reinstall's characters
	taken("debian-12", "Debian", "Debian")
	taken("debian-12", "", "debian")
	taken("base", "windows", "windows") // base records no family
	if code, out := admin("PUT", "/admin/os-templates/u2404", `{"family":"ubuntu"}`); code != http.StatusOK {
		t.Fatalf("label u2404: %d %s", code, out)
	}
	refused("u2404", "u2404")
	taken("u2404", "ubuntu", "ubuntu")
}
