package fsm

import (
	"fmt"
	"net/netip"

	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/validate"
)

// LevelHostingConnection is the semantics level (level.go) from which a
// hosting node's connection details (api.NodeHostingConnection: its public
// SFTP host name, its sshd's port, its MariaDB's TCP port) are recorded on
// the node, from its Hello (NodeHello.HostingConnection) and from its usage
// reports (HostingUsageReport.Connection). Below it the leader leaves them
// out of both commands and apply ignores them, as the release before (which
// does not know the fields) does; the accounts' connection details are then
// the defaults (the domain, 22, 3306).
const LevelHostingConnection = 7

// LevelHostingHostNoZone is the semantics level from which apply refuses a
// node's connection details whose SFTP host is an IP address with a zone
// (fe80::1%eth0: an interface of the node itself, which no customer
// reaches), as the leader's check (CheckNodeHostingConnection) and the
// agent's --hosting-sftp-host do. Below it apply takes them, as the release
// before does, so that replicas of both releases and a replayed log agree.
const LevelHostingHostNoZone = 8

// LevelHostingDBKnown is the semantics level from which a node's connection
// details keep DBKnown (its MariaDB's answer is what DBPort says, so a 0 is
// "no TCP", not "not known"): below it apply records them without it, as
// the release before does (it does not know the field), and the leader
// compares and proposes them without it (HostingConnectionAt).
const LevelHostingDBKnown = 12

// HostingConnectionAt is conn as semantics level level records it: without
// DBKnown below LevelHostingDBKnown (a copy; conn itself is not changed).
func HostingConnectionAt(conn *api.NodeHostingConnection, level uint16) *api.NodeHostingConnection {
	if conn == nil || !conn.DBKnown || level >= LevelHostingDBKnown {
		return conn
	}
	cp := *conn
	cp.DBKnown = false
	return &cp
}

// CheckNodeHostingConnection is the rule for a node's reported connection
// details: the SFTP host "" or a host name (RFC 1123, lower case) or an IP
// address without a zone (validate.PublicHost, the agent's rule for
// --hosting-sftp-host), the ports 0 (not known) to 65535. The leader holds
// what it proposes to it; apply does from LevelHostingHostNoZone.
func CheckNodeHostingConnection(p api.NodeHostingConnection) error {
	return checkNodeHostingConnection(p, LevelHostingHostNoZone)
}

// checkNodeHostingConnection is the rule at semantics level level: below
// LevelHostingHostNoZone an SFTP host that parses as an IP address passes
// whatever its zone.
func checkNodeHostingConnection(p api.NodeHostingConnection, level uint16) error {
	if p.SFTPHost != "" {
		_, aerr := netip.ParseAddr(p.SFTPHost)
		if level >= LevelHostingHostNoZone || aerr != nil {
			if err := validate.PublicHost(p.SFTPHost); err != nil {
				return fmt.Errorf("%w: sftp host: %s", ErrInvalid, validate.Reason(err))
			}
		}
	}
	if p.SFTPPort < 0 || p.SFTPPort > 65535 || p.DBPort < 0 || p.DBPort > 65535 {
		return fmt.Errorf("%w: sftp port %d and db port %d must be 0 to 65535", ErrInvalid, p.SFTPPort, p.DBPort)
	}
	return nil
}

// setNodeHostingConnection records conn (nil: not known) on n from
// LevelHostingConnection; it reports whether n changed. An invalid conn is
// ErrInvalid (the leader checks it before proposing).
func setNodeHostingConnection(c *applyCtx, n *store.AgentNode, conn *api.NodeHostingConnection) (bool, error) {
	level := c.level()
	if level < LevelHostingConnection {
		return false, nil
	}
	if conn != nil {
		if err := checkNodeHostingConnection(*conn, level); err != nil {
			return false, fmt.Errorf("node %s: %w", n.ID, err)
		}
		conn = HostingConnectionAt(conn, level)
		cp := *conn
		conn = &cp
	}
	if SameHostingConnection(n.HostingConnection, conn) {
		return false, nil
	}
	n.HostingConnection = conn
	return true, nil
}

// SameHostingConnection reports whether a and b say the same (both nil, or
// equal).
func SameHostingConnection(a, b *api.NodeHostingConnection) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// recordUsageConnection records a usage report's connection details on its
// node (from LevelHostingConnection; none given changes nothing). A node
// removed keeps what it had.
func recordUsageConnection(c *applyCtx, node string, conn *api.NodeHostingConnection) error {
	if conn == nil || c.level() < LevelHostingConnection {
		return nil
	}
	n, err := c.r.AgentNode(node)
	if err != nil || n.State == api.AgentNodeRemoved {
		return nil // its accounts are refused as not on the node
	}
	changed, err := setNodeHostingConnection(c, &n, conn)
	if err != nil || !changed {
		return err
	}
	return store.PutJSON(c.tx, store.BucketAgentNodes, []byte(n.ID), n)
}
