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
// TCP port the node's MariaDB says it listens on (0 when it could not be
// asked or takes no TCP connections: skip_networking).
func (n *Node) Connection(ctx context.Context) api.NodeHostingConnection {
	c := api.NodeHostingConnection{SFTPHost: n.cfg.SFTPHost, SFTPPort: n.cfg.SFTPPort}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if p, err := n.DB.Port(ctx); err == nil {
		c.DBPort = p
	}
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
