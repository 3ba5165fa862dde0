package hosting

import (
	"bytes"
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
	"github.com/hostplane/hostplane/tests/framework/hostenv"
)

// TestDBPortFollowsTheNodesMariaDB (outside-in: three coordinator
// processes, the real node, its MariaDB stopped and started again with
// --skip-networking): the customer's db_port is never a port nothing
// listens on.
//   - MariaDB stopped under a running agent: the usage reports go on and
//     keep the port MariaDB last answered (an outage takes nothing back).
//   - The agent restarted while MariaDB is stopped: it connects without
//     waiting on MariaDB, serves the site and reports usage; db_port is 0
//     and db_network unknown until MariaDB answers, and its port is filled
//     in by the next usage report once it does.
//   - MariaDB with skip_networking: db_port 0 and db_network socket_only
//     (the customer can tell it from unknown), nothing listens on the old
//     port, and the page reaches the database with db_host (localhost,
//     the socket).
func TestDBPortFollowsTheNodesMariaDB(t *testing.T) {
	w := newWorldWith(t, worldOptions{
		coordinatorArgs: func(*hostenv.Env) []string { return []string{"--hosting-usage-interval=1s"} },
		agentArgsFor: func(env *hostenv.Env) []string {
			return []string{"-hosting-sftp-host", "localhost", "-hosting-sftp-port", strconv.Itoa(sshdPort(t, env))}
		},
	})
	user, domain, created := w.activeSite("p", "dbport")
	cl := w.client(1, w.key)
	get := func() api.HostingAccount {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		h, err := cl.HostingAccount(ctx, created.Hosting.ID)
		if err != nil {
			t.Fatalf("GET /v1/hosting/%s: %v", created.Hosting.ID, err)
		}
		return h
	}
	waitFor := func(what string, ok func(api.HostingAccount) bool) api.HostingAccount {
		t.Helper()
		return framework.PollFor(t, what, 30*time.Second, 200*time.Millisecond, func(context.Context) (api.HostingAccount, error) {
			return get(), nil
		}, ok)
	}
	// dbPort: db_port p, and db_network network (which a 0 is: no TCP,
	// socket_only, or not known).
	dbPort := func(p int, network string) func(api.HostingAccount) bool {
		return func(h api.HostingAccount) bool { return h.Connection.DBPort == p && h.Connection.DBNetwork == network }
	}
	// upload puts a file of n KiB over SFTP and waits until a usage report
	// counted it: a report made after the upload has been written.
	upload := func(what string, kib int) {
		t.Helper()
		before := get().Quota.DiskUsedBytes
		sc, err := hostenv.SFTP(w.env.SSHAddr, user, created.SFTPPassword)
		if err != nil {
			t.Fatal(err)
		}
		defer sc.Close()
		if err := hostenv.Put(sc, "/private/"+strconv.Itoa(kib)+".bin", string(bytes.Repeat([]byte("x"), kib<<10))); err != nil {
			t.Fatalf("upload over SFTP: %v", err)
		}
		waitFor(what+": a usage report counts the upload", func(h api.HostingAccount) bool {
			return h.Quota.DiskUsedBytes >= before+uint64(kib)<<10
		})
	}
	page := func(what, want0, want1 string) {
		t.Helper()
		sc, err := hostenv.SFTP(w.env.SSHAddr, user, created.SFTPPassword)
		if err != nil {
			t.Fatal(err)
		}
		err = hostenv.Put(sc, "/public/index.php", connectionPHP(get().Connection, created.DBPassword))
		sc.Close()
		if err != nil {
			t.Fatal(err)
		}
		code, body := hostenv.Get(t, w.env.HTTPAddr, domain, "/")
		if code != 200 || !strings.Contains(body, "db0="+want0) || !strings.Contains(body, "db1="+want1) {
			t.Fatalf("%s: the page with db_host localhost (db0, want %s) and 127.0.0.1 (db1, want %s): %d %s", what, want0, want1, code, body)
		}
	}

	tcp := waitFor("db_port is the node's MariaDB's", dbPort(w.env.DBPort, api.DBNetworkTCP)).Connection
	page("MariaDB on TCP", "OK:"+user, "OK:"+user)

	w.env.StopMariaDB(t)
	upload("MariaDB stopped", 64)
	if h := get(); h.Connection.DBPort != w.env.DBPort || h.Connection.DBNetwork != api.DBNetworkTCP {
		t.Fatalf("a usage report during MariaDB's outage took back its port: db_port %d (%s), want %d (tcp)", h.Connection.DBPort, h.Connection.DBNetwork, w.env.DBPort)
	}

	w.agent.Stop()
	w.agent.Start("")
	waitFor("the agent restarted while MariaDB is stopped: db_port 0, db_network unknown", dbPort(0, api.DBNetworkUnknown))
	if code, _ := hostenv.Get(t, w.env.HTTPAddr, domain, "/"); code != 500 && code != 200 {
		t.Fatalf("the site while MariaDB is stopped: %d, want the page served (its database calls failing)", code)
	}
	upload("the agent restarted while MariaDB is stopped", 128)

	w.env.StartMariaDB(t)
	waitFor("MariaDB back: db_port filled in by a usage report", dbPort(w.env.DBPort, api.DBNetworkTCP))

	w.env.StopMariaDB(t)
	w.env.StartMariaDB(t, "--skip-networking")
	// The rest of the connection (SFTP, db_host, db_name, db_user) stays
	// as it was: only the port and the network follow MariaDB.
	noTCP := tcp
	noTCP.DBPort, noTCP.DBNetwork = 0, api.DBNetworkSocketOnly
	waitFor("MariaDB with skip_networking: db_port 0, db_network socket_only, the rest unchanged", func(h api.HostingAccount) bool {
		return h.Connection == noTCP
	})
	if c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(w.env.DBPort))); err == nil {
		c.Close()
		t.Fatalf("something listens on MariaDB's old port %d", w.env.DBPort)
	}
	page("MariaDB with skip_networking", "OK:"+user, "DENIED:")
}
