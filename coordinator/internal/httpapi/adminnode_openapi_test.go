package httpapi

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/pkg/api"
)

// TestAdminNodeMatchesOpenAPI: the operator API's node record (GET
// /admin/nodes/{id}, each of GET /admin/nodes) matches openapi.json's
// AdminNode schema, which names every field (additionalProperties false),
// the hosting connection's db_known that README documents included: an
// enrolled node that never said hello, a hosting node whose MariaDB takes
// no TCP (db_known, level 12), and one with a port. Before, the document
// had no schema for the record.
func TestAdminNodeMatchesOpenAPI(t *testing.T) {
	s := newSrvAPI(t)
	for _, name := range []string{"AdminNode", "NodeHostingConnection"} {
		if ref := s.doc.Components.Schemas[name]; ref == nil || ref.Value == nil {
			t.Fatalf("openapi.json has no %s schema", name)
		}
	}
	call := adminCall(t, s)
	s.apply(fsm.CmdClusterLevel, fsm.ClusterLevel{Level: fsm.LevelHostingDBKnown})
	check := func(when, id, want string) {
		t.Helper()
		st, body := call("GET", "/admin/nodes/"+id, "")
		if st != http.StatusOK {
			t.Fatalf("%s: GET /admin/nodes/%s: %d %s", when, id, st, body)
		}
		if err := s.schema("AdminNode", []byte(body)); err != nil {
			t.Errorf("%s: GET /admin/nodes/%s does not match AdminNode: %v\n%s", when, id, err, body)
		}
		if !strings.Contains(body, want) {
			t.Errorf("%s: GET /admin/nodes/%s lacks %s: %s", when, id, want, body)
		}
		st, body = call("GET", "/admin/nodes", "")
		var list []json.RawMessage
		if st != http.StatusOK || json.Unmarshal([]byte(body), &list) != nil || len(list) == 0 {
			t.Fatalf("%s: GET /admin/nodes: %d %s", when, st, body)
		}
		for _, n := range list {
			if err := s.schema("AdminNode", n); err != nil {
				t.Errorf("%s: an item of GET /admin/nodes does not match AdminNode: %v\n%s", when, err, n)
			}
		}
	}
	check("enrolled, no hello", "hv-secret-node", `"state":"enrolled"`)
	s.apply(fsm.CmdNodeTokenCreate, fsm.NodeTokenCreate{ID: "jt_web", Hash: "hw", ExpiresAt: time.Now().Add(time.Hour)})
	s.apply(fsm.CmdNodeEnrol, fsm.NodeEnrol{TokenID: "jt_web", TokenHash: "hw", NodeID: "hv-web", CertSerial: "sw", CertNotAfter: time.Now().Add(24 * time.Hour)})
	hello := func(c *api.NodeHostingConnection) {
		t.Helper()
		s.apply(fsm.CmdNodeHello, fsm.NodeHello{NodeID: "hv-web", CertSerial: "sw", Roles: []string{api.RoleHosting}, ProtocolVersion: 106, HostingConnection: c})
	}
	hello(&api.NodeHostingConnection{SFTPHost: "web1.provider.example", SFTPPort: 2200, DBKnown: true})
	check("MariaDB without TCP", "hv-web", `"hosting_connection":{"sftp_host":"web1.provider.example","sftp_port":2200,"db_known":true}`)
	hello(&api.NodeHostingConnection{SFTPPort: 22, DBPort: 3307, DBKnown: true})
	check("MariaDB on TCP", "hv-web", `"db_port":3307,"db_known":true`)
}
