package hosting

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
	"github.com/hostplane/hostplane/tests/framework/hostenv"
)

// sshdPort is the port of the Env's sshd (never 22 in the tests).
func sshdPort(t *testing.T, env *hostenv.Env) int {
	t.Helper()
	_, p, err := net.SplitHostPort(env.SSHAddr)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(p)
	return n
}

// connectionPHP is a page that logs in to MariaDB with the connection
// details the API gave (host and port as given, then over TCP to
// 127.0.0.1 and the given port) and names the database it reached.
func connectionPHP(c api.HostingConnection, password string) string {
	q := func(s string) string { return strconv.Quote(s) }
	return fmt.Sprintf(`<?php
header('Content-Type: text/plain');
mysqli_report(MYSQLI_REPORT_OFF);
foreach ([%s, '127.0.0.1'] as $i => $host) {
  $m = @mysqli_connect($host, %s, %s, %s, %d);
  if (!$m) { echo "db$i=DENIED:", mysqli_connect_errno(), "\n"; continue; }
  $r = mysqli_query($m, 'SELECT DATABASE()');
  echo "db$i=OK:", mysqli_fetch_row($r)[0], "\n";
}
`, q(c.DBHost), q(c.DBUser), q(password), q(c.DBName), c.DBPort)
}

// TestConnectionDetailsAreTheNodes (outside-in: three coordinator
// processes, the real node with its sshd and MariaDB on ports other than
// 22 and 3306): GET /v1/hosting/{id} tells the node's own connection
// details, and they are the ones that work. With the node's public host
// name set (agent --hosting-sftp-host, here "localhost": the domain's DNS
// points nowhere, as a new customer's before the move) the customer logs in
// over SFTP at sftp_host:sftp_port, uploads a page, and the page reaches
// the account's database with db_host, db_port, db_name and db_user (and
// over TCP at db_port). The node restarted without a public host name
// answers the account's domain as sftp_host again, its ports unchanged.
// (Its MariaDB restarted with skip_networking: TestDBPortFollowsTheNodesMariaDB,
// which restarts it so anyway, checks the whole connection then.)
func TestConnectionDetailsAreTheNodes(t *testing.T) {
	w := newWorldWith(t, worldOptions{
		// The node's hello may come before the cluster reaches the level
		// that records it: its usage reports carry the details too.
		coordinatorArgs: func(*hostenv.Env) []string { return []string{"--hosting-usage-interval=1s"} },
		agentArgsFor: func(env *hostenv.Env) []string {
			return []string{"-hosting-sftp-host", "localhost", "-hosting-sftp-port", strconv.Itoa(sshdPort(t, env))}
		},
	})
	if p := sshdPort(t, w.env); p == api.DefaultSFTPPort || w.env.DBPort == api.DefaultDBPort {
		t.Fatalf("the test's sshd (%d) and MariaDB (%d) must not be on the default ports", p, w.env.DBPort)
	}
	user, domain, created := w.activeSite("c", "conn")
	cl := w.client(2, w.key)
	want := api.HostingConnection{SFTPHost: "localhost", SFTPPort: sshdPort(t, w.env), SFTPUser: user,
		DBHost: "localhost", DBPort: w.env.DBPort, DBNetwork: api.DBNetworkTCP, DBName: user, DBUser: user}
	h := framework.PollFor(t, "the node's connection details", 30*time.Second, 200*time.Millisecond, func(ctx context.Context) (api.HostingAccount, error) {
		return cl.HostingAccount(ctx, created.Hosting.ID)
	}, func(h api.HostingAccount) bool { return h.Connection == want })
	for _, l := range listHosting(t, w) {
		if l.ID == h.ID && l.Connection != want {
			t.Fatalf("GET /v1/hosting lists %+v, want %+v", l.Connection, want)
		}
	}

	// What the customer does with them.
	c := h.Connection
	sc, err := hostenv.SFTP(net.JoinHostPort(c.SFTPHost, strconv.Itoa(c.SFTPPort)), c.SFTPUser, created.SFTPPassword)
	if err != nil {
		t.Fatalf("SFTP login at %s:%d as %s: %v", c.SFTPHost, c.SFTPPort, c.SFTPUser, err)
	}
	err = hostenv.Put(sc, "/public/index.php", connectionPHP(c, created.DBPassword))
	sc.Close()
	if err != nil {
		t.Fatalf("upload over SFTP: %v", err)
	}
	code, body := hostenv.Get(t, w.env.HTTPAddr, domain, "/")
	if code != 200 || !strings.Contains(body, "db0=OK:"+user+"\n") || !strings.Contains(body, "db1=OK:"+user+"\n") {
		t.Fatalf("the page reaching the database with %+v: %d %s", c, code, body)
	}

	// The same node without a public host name: the domain, as before.
	w.agent.Stop()
	args := w.agent.Args[:0:0]
	for i := 0; i < len(w.agent.Args); i++ {
		if w.agent.Args[i] == "-hosting-sftp-host" {
			i++
			continue
		}
		args = append(args, w.agent.Args[i])
	}
	w.agent.Args = args
	w.agent.Start("")
	want.SFTPHost = domain
	framework.PollFor(t, "the domain as sftp_host once the node has no public host name", 30*time.Second, 200*time.Millisecond, func(ctx context.Context) (api.HostingAccount, error) {
		return cl.HostingAccount(ctx, created.Hosting.ID)
	}, func(h api.HostingAccount) bool { return h.Connection == want })

}

func listHosting(t *testing.T, w *world) []api.HostingAccount {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := w.client(1, w.key).Hosting(ctx, 1, 100)
	if err != nil {
		t.Fatal(err)
	}
	return l.Data
}
