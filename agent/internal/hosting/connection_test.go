package hosting_test

import (
	"context"
	"net"
	"strconv"
	"testing"

	"github.com/hostplane/hostplane/agent/internal/hosting"
	"github.com/hostplane/hostplane/agent/internal/hosting/hostingtest"
	"github.com/hostplane/hostplane/pkg/api"
)

// TestConnectionFollowsMariaDB (a real MariaDB, stopped and started again
// with --skip-networking): a node's connection details carry the TCP port
// its MariaDB answers (@@port), 0 once it takes no TCP connections (and
// nothing listens on the old port then); while MariaDB is stopped the port
// it last answered, and 0 on a node that never had an answer. The Hello's
// details (HelloConnection) ask MariaDB only while it never answered.
// DBKnown tells a 0 that is MariaDB's answer (skip_networking) from one
// that is not known (never answered).
func TestConnectionFollowsMariaDB(t *testing.T) {
	e := hostingtest.Config(t)
	e.Cfg.SFTPHost, e.Cfg.SFTPPort = "sftp.example.test", 2222
	newNode := func() *hosting.Node {
		n, err := hosting.New(e.Cfg)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	ctx := context.Background()
	want := func(what string, got api.NodeHostingConnection, port int, known bool) {
		t.Helper()
		if w := (api.NodeHostingConnection{SFTPHost: "sftp.example.test", SFTPPort: 2222, DBPort: port, DBKnown: known}); got != w {
			t.Fatalf("%s: %+v, want %+v", what, got, w)
		}
	}
	n := newNode()
	want("MariaDB on TCP", n.Connection(ctx), e.DBPort, true)

	e.StopMariaDB(t)
	want("MariaDB stopped: the port it last answered", n.Connection(ctx), e.DBPort, true)
	want("MariaDB stopped, the hello's", n.HelloConnection(ctx), e.DBPort, true)
	fresh := newNode()
	want("MariaDB stopped, a node that never had an answer (hello)", fresh.HelloConnection(ctx), 0, false)
	want("MariaDB stopped, a node that never had an answer", fresh.Connection(ctx), 0, false)

	e.StartMariaDB(t, "--skip-networking")
	if c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(e.DBPort))); err == nil {
		c.Close()
		t.Fatalf("MariaDB with --skip-networking still listens on %d", e.DBPort)
	}
	want("the hello's, before a report asked again", n.HelloConnection(ctx), e.DBPort, true)
	want("MariaDB with skip_networking", n.Connection(ctx), 0, true)
	want("the hello's after that", n.HelloConnection(ctx), 0, true)
	want("the hello's of a node that never had an answer: asked", fresh.HelloConnection(ctx), 0, true)

	e.StopMariaDB(t)
	e.StartMariaDB(t)
	want("MariaDB on TCP again", n.Connection(ctx), e.DBPort, true)
	want("the hello's of the node that last heard 0: asked only while never answered", fresh.HelloConnection(ctx), 0, true)
	want("its report's", fresh.Connection(ctx), e.DBPort, true)
}
