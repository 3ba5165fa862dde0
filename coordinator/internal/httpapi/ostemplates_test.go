package httpapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/pkg/api"
)

// TestListOSTemplates: GET /v1/os-templates lists what the nodes reported,
// each template once though two nodes hold it, sorted, split into family and
// version (the answer checked against openapi.json); an empty list before
// any node reported; servers:read is needed.
func TestListOSTemplates(t *testing.T) {
	s := newSrvAPI(t)
	s.apply(fsm.CmdNodeTokenCreate, fsm.NodeTokenCreate{ID: "jt_2", Hash: "h2", ExpiresAt: time.Now().Add(time.Hour)})
	s.apply(fsm.CmdNodeEnrol, fsm.NodeEnrol{TokenID: "jt_2", TokenHash: "h2", NodeID: "hv-second", CertSerial: "s2", CertNotAfter: time.Now().Add(24 * time.Hour)})
	s.mu.Lock()
	s.templates = []string{"ubuntu-24.04", "debian-12", "base"} // every node reports this list
	s.mu.Unlock()
	_, key := s.account(api.ScopeServersRead)
	r := s.call(key, "GET", "/v1/os-templates", "")
	var got api.OSTemplateList
	if err := json.Unmarshal(r.body, &got); r.status != http.StatusOK || err != nil {
		t.Fatalf("GET /v1/os-templates: %d %s %v", r.status, r.body, err)
	}
	want := []api.OSTemplate{{Name: "base", Family: "base"}, {Name: "debian-12", Family: "debian", Version: "12"},
		{Name: "ubuntu-24.04", Family: "ubuntu", Version: "24.04"}}
	if !reflect.DeepEqual(got.Data, want) {
		t.Fatalf("templates %+v, want %+v", got.Data, want)
	}

	s.mu.Lock()
	s.templates = nil // no node reported
	s.mu.Unlock()
	r = s.call(key, "GET", "/v1/os-templates", "")
	got = api.OSTemplateList{}
	if err := json.Unmarshal(r.body, &got); r.status != http.StatusOK || err != nil || got.Data == nil || len(got.Data) != 0 {
		t.Fatalf("before any report: %d %s, want an empty list", r.status, r.body)
	}

	_, other := s.account(api.ScopeAccountRead)
	if r := s.call(other, "GET", "/v1/os-templates", ""); r.status != http.StatusForbidden || r.code() != "missing_scope" {
		t.Fatalf("without servers:read: %d %s", r.status, r.body)
	}
}

// TestOSTemplateLabelAdmin: `PUT /admin/os-templates/{name}` labels a
// template (every refusal a 400 naming its field, nothing stored);
// GET /v1/os-templates shows the label of a template a node holds and the
// derived family and version of the others (checked against openapi.json),
// not a labelled template no node holds; a reinstall or an operator's server
// without "os" takes the label's family; DELETE unlabels (404 the second
// time).
func TestOSTemplateLabelAdmin(t *testing.T) {
	s := newSrvAPI(t)
	adm := s.a.ServerAdmin(http.NotFoundHandler(), ServerAdminConfig{Nodes: NodeDeps{Live: func(string) (time.Time, bool) { return time.Now(), true }}})
	admin := func(method, path, body string) (int, []byte) {
		t.Helper()
		w := httptest.NewRecorder()
		adm.ServeHTTP(w, httptest.NewRequest(method, path, strings.NewReader(body)))
		return w.Code, w.Body.Bytes()
	}
	for _, tc := range []struct{ path, body, field string }{
		{"/admin/os-templates/Ubuntu", `{"family":"ubuntu"}`, "name"},
		{"/admin/os-templates/u2404", `{}`, "family"},
		{"/admin/os-templates/u2404", `{"family":"ubu/ntu"}`, "family"},
		{"/admin/os-templates/u2404", `{"family":"ubuntu","version":"24.04 "}`, "version"},
		{"/admin/os-templates/u2404", `{"family":"ubuntu","display_name":"Ubuntu\u0007"}`, "display_name"},
		{"/admin/os-templates/u2404", `{"family":"ubuntu","display_name":"` + strings.Repeat("x", 65) + `"}`, "display_name"},
		{"/admin/os-templates/u2404", `{"family":"ubuntu","os":"x"}`, "os"},
	} {
		code, body := admin("PUT", tc.path, tc.body)
		if code != http.StatusBadRequest || !strings.Contains(string(body), `\"`+tc.field+`\"`) {
			t.Fatalf("PUT %s %s: %d %s, want a 400 naming %s", tc.path, tc.body, code, body, tc.field)
		}
	}
	if code, body := admin("GET", "/admin/os-templates", ""); code != http.StatusOK || string(body) != "[]\n" {
		t.Fatalf("after refusals: %d %s", code, body)
	}

	s.mu.Lock()
	s.templates = []string{"debian-12", "u2404", "ubuntu-24.04"}
	s.mu.Unlock()
	code, body := admin("PUT", "/admin/os-templates/u2404", `{"family":"ubuntu","version":"24.04","display_name":"Ubuntu 24.04 LTS"}`)
	var l api.OSTemplateLabel
	if err := json.Unmarshal(body, &l); code != http.StatusOK || err != nil || l.Name != "u2404" || l.Family != "ubuntu" || l.UpdatedAt.IsZero() {
		t.Fatalf("label: %d %s", code, body)
	}
	if code, body := admin("PUT", "/admin/os-templates/centos-7", `{"display_name":"CentOS 7"}`); code != http.StatusOK {
		t.Fatalf("label centos-7: %d %s", code, body)
	}
	acc, key := s.account(allServerScopes...)
	r := s.call(key, "GET", "/v1/os-templates", "")
	var got api.OSTemplateList
	if err := json.Unmarshal(r.body, &got); r.status != http.StatusOK || err != nil {
		t.Fatalf("GET /v1/os-templates: %d %s %v", r.status, r.body, err)
	}
	want := []api.OSTemplate{{Name: "debian-12", Family: "debian", Version: "12"},
		{Name: "u2404", Family: "ubuntu", Version: "24.04", DisplayName: "Ubuntu 24.04 LTS"},
		{Name: "ubuntu-24.04", Family: "ubuntu", Version: "24.04"}}
	if !reflect.DeepEqual(got.Data, want) {
		t.Fatalf("templates %+v, want %+v", got.Data, want)
	}
	code, body = admin("GET", "/admin/os-templates", "")
	var labels []api.OSTemplateLabel
	if err := json.Unmarshal(body, &labels); code != http.StatusOK || err != nil || len(labels) != 2 || labels[0].Name != "centos-7" || labels[1].Name != "u2404" {
		t.Fatalf("labels: %d %s", code, body)
	}

	// A reinstall without "os" takes the family of the label.
	id := s.server(acc)
	act := actionID(t, s.call(key, "POST", "/v1/servers/"+id+"/reinstall", `{"osTemplate":"u2404"}`))
	s.finish(act, true)
	if d := s.call(key, "GET", "/v1/servers/"+id, ""); d.m["os_template"] != "u2404" || d.m["os"] != "ubuntu" {
		t.Fatalf("after reinstall: %s", d.body)
	}

	// So does a server an operator places without "os"; one with "os" of
	// that family keeps it (another family is refused:
	// TestAdminServerOSOfTemplate).
	s.apply(fsm.CmdNodeHello, fsm.NodeHello{NodeID: "hv-secret-node", CertSerial: "s1", Roles: []string{"kvm"}, ProtocolVersion: 103,
		Capacity: api.AgentNodeCapacity{VCPUs: 64, MemoryBytes: 64 << 30, DiskBytes: 1 << 40}})
	for body, want := range map[string]string{
		`{"account_id":"` + acc + `","plan":"nano","template":"u2404"}`:               "ubuntu",
		`{"account_id":"` + acc + `","plan":"nano","template":"u2404","os":"Ubuntu"}`: "Ubuntu",
		`{"account_id":"` + acc + `","plan":"nano","template":"debian-12"}`:           "debian",
	} {
		code, out := admin("POST", "/admin/servers", body)
		var created api.AdminServerCreated
		if err := json.Unmarshal(out, &created); code != http.StatusCreated || err != nil || created.Server.OS != want {
			t.Fatalf("POST /admin/servers %s: %d %s, want os %q", body, code, out, want)
		}
	}

	if code, body := admin("DELETE", "/admin/os-templates/u2404", ""); code != http.StatusOK || !strings.Contains(string(body), `"Ubuntu 24.04 LTS"`) {
		t.Fatalf("unlabel: %d %s", code, body)
	}
	if code, body := admin("DELETE", "/admin/os-templates/u2404", ""); code != http.StatusNotFound {
		t.Fatalf("second unlabel: %d %s", code, body)
	}
	if code, body := admin("DELETE", "/admin/os-templates/Bad", ""); code != http.StatusBadRequest || !strings.Contains(string(body), `\"name\"`) {
		t.Fatalf("unlabel of a bad name: %d %s", code, body)
	}
	r = s.call(key, "GET", "/v1/os-templates", "")
	got = api.OSTemplateList{}
	if err := json.Unmarshal(r.body, &got); err != nil || len(got.Data) != 3 || got.Data[1] != (api.OSTemplate{Name: "u2404", Family: "u2404"}) {
		t.Fatalf("after unlabel: %s", r.body)
	}
}

// FuzzDecodeOSTemplateLabel: the label decoder never panics, and what it
// accepts the FSM accepts too.
func FuzzDecodeOSTemplateLabel(f *testing.F) {
	f.Add("u2404", []byte(`{"family":"ubuntu","version":"24.04","display_name":"Ubuntu 24.04 LTS"}`))
	f.Add("debian-12", []byte(`{"display_name":"Debian \u00e9"}`))
	f.Add("x", []byte(`{"family":" a"}`))
	f.Fuzz(func(t *testing.T, name string, body []byte) {
		req, err := DecodeOSTemplateLabel(name, body)
		if err != nil {
			return
		}
		if field, reason := fsm.CheckOSTemplateLabel(name, req); field != "" {
			t.Fatalf("accepted %q %s, which the FSM refuses: %s %s", name, body, field, reason)
		}
	})
}

// TestAdminServerNamedNode: a server an operator pins to a node goes to that
// node, not to the first with room; a node id nobody has is a 404 naming it.
func TestAdminServerNamedNode(t *testing.T) {
	s := newSrvAPI(t)
	adm := s.a.ServerAdmin(http.NotFoundHandler(), ServerAdminConfig{Nodes: NodeDeps{Live: func(string) (time.Time, bool) { return time.Now(), true }}})
	for _, id := range []string{"hv-a", "hv-b", "hv-c"} {
		s.apply(fsm.CmdNodeTokenCreate, fsm.NodeTokenCreate{ID: "jt_" + id, Hash: "h-" + id, ExpiresAt: time.Now().Add(time.Hour)})
		s.apply(fsm.CmdNodeEnrol, fsm.NodeEnrol{TokenID: "jt_" + id, TokenHash: "h-" + id, NodeID: id, CertSerial: "s-" + id, CertNotAfter: time.Now().Add(24 * time.Hour)})
		s.apply(fsm.CmdNodeHello, fsm.NodeHello{NodeID: id, CertSerial: "s-" + id, Roles: []string{"kvm"}, ProtocolVersion: 103,
			Capacity: api.AgentNodeCapacity{VCPUs: 64, MemoryBytes: 64 << 30, DiskBytes: 1 << 40}})
	}
	acc, _ := s.account(allServerScopes...)
	create := func(node string) (int, []byte) {
		t.Helper()
		w := httptest.NewRecorder()
		body := `{"account_id":"` + acc + `","plan":"nano","template":"debian-12","node_id":"` + node + `"}`
		adm.ServeHTTP(w, httptest.NewRequest("POST", "/admin/servers", strings.NewReader(body)))
		return w.Code, w.Body.Bytes()
	}
	for _, node := range []string{"hv-b", "hv-c", "hv-b"} {
		code, out := create(node)
		var created api.AdminServerCreated
		if err := json.Unmarshal(out, &created); code != http.StatusCreated || err != nil || created.Server.NodeID != node {
			t.Fatalf("pinned to %s: %d %s", node, code, out)
		}
	}
	if code, out := create("hv-none"); code != http.StatusNotFound || !strings.Contains(string(out), "hv-none") {
		t.Fatalf("pinned to a node nobody has: %d %s, want a 404 naming it", code, out)
	}
}
