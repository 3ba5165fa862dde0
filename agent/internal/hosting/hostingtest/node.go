package hostingtest

import (
	"net"
	"strconv"
	"testing"

	"github.com/hostplane/hostplane/agent/internal/hosting"
	"github.com/hostplane/hostplane/tests/framework"
)

// Env is a hosting node's real servers for one test.
type Env struct {
	Cfg      hosting.Config
	Node     *hosting.Node
	Prefix   string // user and group names of this test start with it
	HTTPAddr string
	SSHAddr  string
	DBPort   int
}

func port(tb testing.TB) (string, int) {
	a := framework.FreeAddr(tb, "tcp")
	_, p, _ := net.SplitHostPort(a)
	n, _ := strconv.Atoi(p)
	return a, n
}

// Config is a hosting configuration under a fresh test root with its own
// MariaDB (started) and sshd (started once the node wrote its Match block, by
// NewNode); the users and groups of the prefix are removed at the end.
func Config(tb testing.TB) *Env {
	Need(tb, "nginx", "php-fpm8.2", "useradd", "chpasswd", "usermod", "userdel", "groupadd")
	root, prefix := Root(tb)
	RemoveUsers(tb, prefix)
	e := &Env{Prefix: prefix}
	_, e.DBPort = port(tb)
	e.HTTPAddr, _ = port(tb)
	e.SSHAddr, _ = port(tb)
	cfg := hosting.DefaultConfig()
	cfg.Root = root
	cfg.HTTPListen = e.HTTPAddr
	cfg.NginxWorkers = "1"
	cfg.SFTPGroup = prefix + "sftp"
	cfg.MailSpool = root + "/mail"
	cfg.MariaDBSocket = MariaDB(tb, root, e.DBPort)
	e.Cfg = cfg
	return e
}

// NewNode starts a hosting node (nginx) and sshd on the Env of Config.
func NewNode(tb testing.TB) *Env {
	e := Config(tb)
	n, err := hosting.New(e.Cfg)
	if err != nil {
		tb.Fatal(err)
	}
	if err := n.Start(Ctx(tb)); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(n.Stop)
	e.Node = n
	_, sp, _ := net.SplitHostPort(e.SSHAddr)
	p, _ := strconv.Atoi(sp)
	SSHD(tb, e.Cfg.Root, p, e.Cfg.SFTPGroup, n.L.SFTPConf())
	return e
}
