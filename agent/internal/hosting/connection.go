package hosting

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
)

// Connection is where this node's customers connect, as the coordinator
// shows it in each account's connection details: the public host name and
// sshd port of the node's configuration (Config.SFTPHost, SFTPPort) and the
// TCP port the node's MariaDB says it listens on (0 when it takes no TCP
// connections: skip_networking). MariaDB is asked, for at most 5 s; when it
// cannot be (stopped, hung), DBPort is the port it last answered, 0 while it
// never has: a report made during an outage does not take back a port the
// coordinator knows. DBKnown says DBPort is an answer of MariaDB's (this
// one's or the last), so that a 0 means no TCP rather than not known.
func (n *Node) Connection(ctx context.Context) api.NodeHostingConnection {
	return n.connection(ctx, true, connectionAskTimeout)
}

// HelloConnection is Connection for the agent's Hello, which must not wait
// on MariaDB (a session that reconnects says hello each time, and the node
// serves its sites and VMs whatever MariaDB does): the port MariaDB last
// answered, asked (for at most 2 s) only while it never has. The usage
// reports carry a fresh answer.
func (n *Node) HelloConnection(ctx context.Context) api.NodeHostingConnection {
	return n.connection(ctx, false, helloAskTimeout)
}

// How long Connection and HelloConnection wait for MariaDB's answer.
const (
	connectionAskTimeout = 5 * time.Second
	helloAskTimeout      = 2 * time.Second
)

func (n *Node) connection(ctx context.Context, ask bool, bound time.Duration) api.NodeHostingConnection {
	c := api.NodeHostingConnection{SFTPHost: n.cfg.SFTPHost, SFTPPort: n.cfg.SFTPPort}
	n.dbPortMu.Lock()
	port, known := n.dbPort, n.dbPortKnown
	n.dbPortMu.Unlock()
	if ask || !known {
		ctx, cancel := context.WithTimeout(ctx, bound)
		defer cancel()
		if p, err := n.DB.Port(ctx); err == nil {
			port, known = p, true
			n.dbPortMu.Lock()
			n.dbPort, n.dbPortKnown = p, true
			n.dbPortMu.Unlock()
		}
	}
	c.DBPort, c.DBKnown = port, known
	return c
}

// Port is the TCP port MariaDB listens on (@@port), or 0 when it takes no
// TCP connections (@@skip_networking).
func (m *MariaDB) Port(ctx context.Context) (int, error) {
	out, err := m.exec(ctx, "SELECT @@port, @@skip_networking;\n")
	if err != nil {
		return 0, err
	}
	f := strings.Fields(out)
	if len(f) != 2 {
		return 0, fmt.Errorf("mariadb: @@port, @@skip_networking: unexpected answer %q", out)
	}
	port, err := strconv.Atoi(f[0])
	if err != nil || port < 0 || port > 65535 {
		return 0, fmt.Errorf("mariadb: @@port %q is not a port", f[0])
	}
	if f[1] != "0" {
		return 0, nil
	}
	return port, nil
}
