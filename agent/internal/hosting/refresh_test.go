package hosting_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/agent/internal/hosting/hostingtest"
	"github.com/hostplane/hostplane/tests/framework"
	"github.com/hostplane/hostplane/tests/framework/hostenv"
)

// A pool written by an older agent (here: without disable_functions and
// open_basedir) is rewritten when the agent starts again, and its master
// reloaded: the site made before the upgrade gets the isolation. A start
// with nothing to change rewrites nothing.
func TestStartRewritesExistingPools(t *testing.T) {
	e := hostingtest.NewNode(t)
	ctx := hostenv.Ctx(t)
	a := newAcct(e, "o")
	create(t, e, a)
	c, err := hostenv.SFTP(e.SSHAddr, a.user, a.sftpPW)
	if err != nil {
		t.Fatal(err)
	}
	if err := hostenv.Put(c, "/public/old.php", `<?php
try { $r = exec('id'); echo "exec=", $r, "\n"; } catch (\Throwable $e) { echo "exec=refused\n"; }
$r = @scandir('/'); echo "scandir=", $r === false ? "DENIED" : "LISTED", "\n";`); err != nil {
		t.Fatal(err)
	}
	c.Close()
	pool := filepath.Join(e.Root, "fpm", "8.2", "pool.d", a.user+".conf")
	cur, err := os.ReadFile(pool)
	if err != nil {
		t.Fatal(err)
	}
	var old []string
	for _, l := range strings.Split(string(cur), "\n") {
		if !strings.Contains(l, "disable_functions") && !strings.Contains(l, "open_basedir") {
			old = append(old, l)
		}
	}
	if err := os.WriteFile(pool, []byte(strings.Join(old, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	// The old agent's pool, as it ran before the upgrade.
	pid, _ := os.ReadFile(filepath.Join(e.Root, "fpm", "8.2", "php-fpm.pid"))
	hostenv.Run(t, "kill", "-USR2", strings.TrimSpace(string(pid)))
	framework.WaitFor(t, "the old pool to run exec", 10*time.Second, 50*time.Millisecond, func() bool {
		_, body := hostenv.Get(t, e.HTTPAddr, a.domain, "/old.php")
		return strings.Contains(body, "exec=uid=")
	})

	// The upgraded agent starts.
	n := hostingtest.Started(t, e.Cfg)
	if got, _ := os.ReadFile(pool); string(got) != string(cur) {
		t.Fatalf("pool after the start:\n%s", got)
	}
	if code, body := hostenv.Get(t, e.HTTPAddr, a.domain, "/old.php"); code != 200 || body != "exec=refused\nscandir=DENIED\n" {
		t.Fatalf("the site after the upgraded agent's start: %d %q", code, body)
	}
	if changed, err := n.RefreshPools(ctx); err != nil || changed != 0 {
		t.Fatalf("a second refresh changed %d pools: %v", changed, err)
	}
}
