// Package hostingtest runs a hosting node (the hosting package) on the real
// servers of tests/framework/hostenv.
package hostingtest

import (
	"testing"

	"github.com/hostplane/hostplane/agent/internal/hosting"
	"github.com/hostplane/hostplane/tests/framework/hostenv"
)

// Env is a hosting node's real servers for one test.
type Env struct {
	*hostenv.Env
	Cfg  hosting.Config
	Node *hosting.Node
}

// Config is a hosting configuration on a fresh hostenv (MariaDB started).
func Config(tb testing.TB) *Env {
	e := &Env{Env: hostenv.New(tb)}
	cfg := hosting.DefaultConfig()
	cfg.Root = e.Root
	cfg.HTTPListen = e.HTTPAddr
	cfg.NginxWorkers = "1"
	cfg.SFTPGroup = e.SFTPGroup
	cfg.MailSpool = e.MailSpool
	cfg.MariaDBSocket = e.DBSocket
	e.Cfg = cfg
	return e
}

// NewNode starts a hosting node (nginx) and sshd.
func NewNode(tb testing.TB) *Env {
	e := Config(tb)
	e.Start(tb)
	return e
}

// Start starts the hosting node of e.Cfg (nginx, stopped when the test
// ends) as e.Node, and sshd.
func (e *Env) Start(tb testing.TB) {
	tb.Helper()
	n := Started(tb, e.Cfg)
	tb.Cleanup(n.Stop)
	e.Node = n
	e.StartSSHD(tb)
}

// Started is a hosting node of cfg, started as an agent starts it (nginx,
// the sites and pools it finds, PHP-FPM); the caller stops it, or leaves
// that to the node whose servers it shares.
func Started(tb testing.TB, cfg hosting.Config) *hosting.Node {
	tb.Helper()
	n, err := hosting.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	if err := n.Start(hostenv.Ctx(tb)); err != nil {
		tb.Fatal(err)
	}
	return n
}

// StartNginx starts nginx (one worker) for the layout under root, listening
// on listen; it is stopped when the test ends.
func StartNginx(tb testing.TB, root, listen string) *hosting.Nginx {
	tb.Helper()
	n := &hosting.Nginx{L: hosting.Layout{Root: root}, Bin: "nginx",
		Params: hosting.NginxParams{Root: root, User: "www-data", Listen: listen, ConfDir: "/etc/nginx", Workers: "1"}}
	if err := n.Ensure(hostenv.Ctx(tb)); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = n.Stop() })
	return n
}

// Need is hostenv.Need (kept for the packages that call it from here).
func Need(tb testing.TB, progs ...string) { tb.Helper(); hostenv.Need(tb, progs...) }

// Root is hostenv.Root (kept for the packages that call it from here).
func Root(tb testing.TB) (root, prefix string) { tb.Helper(); return hostenv.Root(tb) }
