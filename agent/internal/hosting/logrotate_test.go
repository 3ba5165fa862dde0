package hosting_test

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/hostplane/hostplane/tests/framework/hostenv"
)

// shippedLogrotate is the logrotate file the packages install as
// /etc/logrotate.d/hostplane-agent.
const shippedLogrotate = "../../../packaging/logrotate/hostplane-agent"

// The packaged logrotate file, its paths moved under a test's hosting root,
// rotates a running nginx's logs (and PHP-FPM's error.log) with `logrotate
// -f`: the old lines are in the rotated file, and what nginx writes next,
// from its workers (access.log) and its master (error.log), lands in the
// live file, not in the rotated one. The workers reopen their logs by name
// on the postrotate's USR1: with the logs directory root 0700 (as up to
// hosting63) they cannot, and keep writing into access.log.1.
func TestShippedLogrotateRotatesNginxLogs(t *testing.T) {
	hostenv.Need(t, "nginx", "logrotate")
	n, addr := startNginx(t)
	logs := n.L.NginxLogs()
	www, err := user.Lookup("www-data")
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(logs); err != nil || st.Mode().Perm() != 0o710 || fmt.Sprint(st.Sys().(*syscall.Stat_t).Gid) != www.Gid || st.Sys().(*syscall.Stat_t).Uid != 0 {
		t.Fatalf("nginx's logs directory: %v %v, want root:www-data 0710 (the workers pass through, no account does)", st, err)
	}
	fpmLog := filepath.Join(n.L.Root, "fpm", "8.2", "error.log")
	if err := os.MkdirAll(filepath.Dir(fpmLog), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(fpmLog, []byte("php-fpm before\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	read := func(name string) string {
		b, _ := os.ReadFile(name)
		return string(b)
	}
	if code, _ := hostenv.Get(t, addr, "x", "/before-rotation"); code != 421 {
		t.Fatalf("before: %d", code)
	}
	// The worker logs a request after its answer has gone.
	inAccessLog := func(s string) func() bool {
		return func() bool { return strings.Contains(read(filepath.Join(logs, "access.log")), s) }
	}
	waitFor(t, "the request before the rotation in access.log", inAccessLog("/before-rotation"))
	c, state := shippedLogrotateFor(t, n.L.Root)
	out, err := exec.Command("logrotate", "-v", "-f", "-s", state, c).CombinedOutput()
	if err != nil {
		t.Fatalf("logrotate -f: %v\n%s", err, out)
	}
	if a1 := read(filepath.Join(logs, "access.log.1")); !strings.Contains(a1, "/before-rotation") {
		t.Fatalf("access.log.1 lacks the request before the rotation: %q\nlogrotate:\n%s", a1, out)
	}
	if e1 := read(filepath.Join(logs, "error.log.1")); !strings.Contains(e1, "start worker process") {
		t.Fatalf("error.log.1 lacks nginx's start: %q\nlogrotate:\n%s", e1, out)
	}
	if read(fpmLog+".1") != "php-fpm before\n" || read(fpmLog) != "" {
		t.Fatalf("PHP-FPM's error.log not rotated: error.log %q, error.log.1 %q", read(fpmLog), read(fpmLog+".1"))
	}
	// A worker's access log line and the master's notices (a reload's)
	// after the rotation.
	if code, _ := hostenv.Get(t, addr, "x", "/after-rotation"); code != 421 {
		t.Fatalf("after: %d", code)
	}
	if err := n.Reload(hostenv.Ctx(t)); err != nil {
		t.Fatalf("reload after the rotation: %v", err)
	}
	waitFor(t, "the request after the rotation in access.log", inAccessLog("/after-rotation"))
	if a, a1 := read(filepath.Join(logs, "access.log")), read(filepath.Join(logs, "access.log.1")); !strings.Contains(a, "/after-rotation") || strings.Contains(a1, "/after-rotation") || strings.Contains(a, "/before-rotation") {
		t.Fatalf("the request after the rotation went elsewhere:\naccess.log %q\naccess.log.1 %q", a, a1)
	}
	if e, e1 := read(filepath.Join(logs, "error.log")), read(filepath.Join(logs, "error.log.1")); !strings.Contains(e, "reconfiguring") || strings.Contains(e1, "reconfiguring") || strings.HasPrefix(e, "\x00") {
		t.Fatalf("the reload after the rotation is not (only) in the live error log:\nerror.log %q\nerror.log.1 %q", e, e1)
	}
}
