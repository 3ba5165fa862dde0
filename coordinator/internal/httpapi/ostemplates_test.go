package httpapi

import (
	"encoding/json"
	"net/http"
	"reflect"
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
