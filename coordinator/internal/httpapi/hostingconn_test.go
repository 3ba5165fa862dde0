package httpapi

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/pkg/api"
)

// TestHostingConnectionOverV1: GET /v1/hosting/{id} and GET /v1/hosting
// show the connection details of the account's node once the node has
// reported them (its public host name as sftp_host, its sshd's and
// MariaDB's ports), and the defaults (the domain, 22, 3306) while it has
// not: below semantics level 7, and at level 7 until it does. A node that
// reports no host name keeps the domain as sftp_host; one that reports no
// MariaDB port (0: skip_networking, or not known yet) shows db_port 0, not
// 3306 (a port nothing may listen on); db_network says which of the two
// from level 12 (socket_only when the node knows, else unknown).
func TestHostingConnectionOverV1(t *testing.T) {
	s := newSrvAPI(t)
	s.apply(fsm.CmdClusterLevel, fsm.ClusterLevel{Level: fsm.LevelHostingConnection - 1})
	acc, key := s.account(api.ScopeHostingRead)
	hst := s.hostingAccount(acc, "ada", "ada.hosting.test")
	hello := func(c *api.NodeHostingConnection) {
		t.Helper()
		s.apply(fsm.CmdNodeHello, fsm.NodeHello{NodeID: "hv-web", CertSerial: "sw", Roles: []string{api.RoleHosting}, ProtocolVersion: 106, HostingConnection: c})
	}
	want := func(when string, c api.HostingConnection) {
		t.Helper()
		var one api.HostingAccount
		var list api.HostingList
		for path, v := range map[string]any{"/v1/hosting/" + hst: &one, "/v1/hosting": &list} {
			r := s.call(key, "GET", path, "")
			if r.status != 200 || json.Unmarshal(r.body, v) != nil {
				t.Fatalf("%s: GET %s: %d %s", when, path, r.status, r.body)
			}
		}
		if one.Connection != c || len(list.Data) != 1 || list.Data[0].Connection != c {
			t.Fatalf("%s: GET %+v, list %+v; want %+v", when, one.Connection, list.Data, c)
		}
	}
	defaults := api.HostingConnection{SFTPHost: "ada.hosting.test", SFTPPort: 22, SFTPUser: "ada", DBHost: "localhost", DBPort: 3306, DBNetwork: "unknown", DBName: "ada", DBUser: "ada"}
	reported := &api.NodeHostingConnection{SFTPHost: "web1.provider.example", SFTPPort: 2222, DBPort: 3307}
	hello(reported)
	want("below level 7", defaults)
	s.apply(fsm.CmdClusterLevel, fsm.ClusterLevel{Level: fsm.LevelHostingConnection})
	want("at level 7, not reported since", defaults)
	hello(reported)
	want("reported", api.HostingConnection{SFTPHost: "web1.provider.example", SFTPPort: 2222, SFTPUser: "ada", DBHost: "localhost", DBPort: 3307, DBNetwork: "tcp", DBName: "ada", DBUser: "ada"})
	hello(&api.NodeHostingConnection{SFTPPort: 2200})
	noPort := api.HostingConnection{SFTPHost: "ada.hosting.test", SFTPPort: 2200, SFTPUser: "ada", DBHost: "localhost", DBPort: 0, DBNetwork: "unknown", DBName: "ada", DBUser: "ada"}
	want("no public host name, no MariaDB port", noPort)
	r := s.call(key, "GET", "/v1/hosting/"+hst, "")
	if !strings.Contains(string(r.body), `"db_port":0`) || !strings.Contains(string(r.body), `"db_network":"unknown"`) {
		t.Fatalf("no MariaDB port: the JSON must say db_port 0, db_network unknown: %s", r.body)
	}

	// From level 12 a node that knows its MariaDB takes no TCP says so:
	// socket_only, not unknown. Below it the flag is not recorded.
	hello(&api.NodeHostingConnection{SFTPPort: 2200, DBKnown: true})
	want("MariaDB without TCP, below level 12", noPort)
	s.apply(fsm.CmdClusterLevel, fsm.ClusterLevel{Level: fsm.LevelHostingDBKnown})
	want("at level 12, not reported since", noPort)
	hello(&api.NodeHostingConnection{SFTPPort: 2200, DBKnown: true})
	socket := noPort
	socket.DBNetwork = "socket_only"
	want("MariaDB without TCP", socket)
	r = s.call(key, "GET", "/v1/hosting/"+hst, "")
	if !strings.Contains(string(r.body), `"db_port":0`) || !strings.Contains(string(r.body), `"db_network":"socket_only"`) {
		t.Fatalf("MariaDB without TCP: the JSON must say db_port 0, db_network socket_only: %s", r.body)
	}
	hello(&api.NodeHostingConnection{SFTPPort: 2200})
	want("not known again (an older agent, or one that could not ask)", noPort)
	hello(&api.NodeHostingConnection{SFTPPort: 2200, DBPort: 3307, DBKnown: true})
	tcp := noPort
	tcp.DBPort, tcp.DBNetwork = 3307, "tcp"
	want("MariaDB on TCP", tcp)
}
