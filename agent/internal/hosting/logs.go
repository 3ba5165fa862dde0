package hosting

import (
	"context"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// NginxLogs is the directory of nginx's logs (access.log, error.log): root
// and the workers' group, 0710 (Nginx.Ensure).
func (l Layout) NginxLogs() string { return filepath.Join(l.Root, "nginx", "logs") }

// ReopenLogs makes the node's nginx and PHP-FPM masters under l reopen their
// logs after logrotate renamed them (logrotate's create and postrotate, run
// by `hostplane-agent hosting reopen-logs`): a USR1 to each running master
// (nginx's, found by its pid file, reopens its own logs and has its workers
// reopen theirs; PHP-FPM's reopens its error.log), then a wait, up to wait,
// until none of their processes holds a log that is no longer the live file
// (a name other than *.log: access.log.1, or deleted). Nothing is written
// between a rename and the reopen that is not in one of the two files. A
// master that is not running is skipped (no role, or stopped: it opens the
// live files when it starts).
func ReopenLogs(ctx context.Context, l Layout, wait time.Duration) error {
	type master struct {
		what, dir string
		pid       int
	}
	var ms []master
	if pid := pidAlive(l.NginxPID()); pid > 0 {
		ms = append(ms, master{"nginx", l.NginxLogs(), pid})
	}
	dirs, _ := filepath.Glob(filepath.Join(l.Root, "fpm", "*"))
	for _, d := range dirs {
		if pid := pidAlive(filepath.Join(d, "php-fpm.pid")); pid > 0 {
			ms = append(ms, master{"php-fpm " + filepath.Base(d), d, pid})
		}
	}
	for _, m := range ms {
		if err := syscall.Kill(m.pid, syscall.SIGUSR1); err != nil {
			return fmt.Errorf("%s (pid %d): USR1: %w", m.what, m.pid, err)
		}
	}
	deadline := time.Now().Add(wait)
	for _, m := range ms {
		for {
			stale := staleLogs(m.pid, m.dir)
			if stale == "" {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s (master pid %d) has not reopened its logs after USR1 within %v: %s", m.what, m.pid, wait, stale)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	return nil
}

// staleLogs names a process of the master pid (itself or a child) that
// holds a file of dir which is no longer a live log: a rotated name (one
// that does not end in .log) or a deleted file; "" when none does.
func staleLogs(pid int, dir string) string {
	for _, p := range append([]int{pid}, children(pid)...) {
		fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", p))
		if err != nil {
			continue // gone meanwhile
		}
		for _, fd := range fds {
			t, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", p, fd.Name()))
			if err != nil || !strings.HasPrefix(t, dir+"/") || strings.ContainsRune(t[len(dir)+1:], '/') {
				continue
			}
			name := t[len(dir)+1:]
			if strings.HasSuffix(name, ".log") || !strings.Contains(name, ".log") {
				continue
			}
			role := "worker"
			if p == pid {
				role = "master"
			}
			return fmt.Sprintf("its %s %d still writes to %s", role, p, strconv.Quote(name))
		}
	}
	return ""
}

// workerGroup is the primary group of the nginx worker user: the logs
// directory's group, so that the workers can reopen their logs on USR1.
func workerGroup(name string) (int, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return 0, fmt.Errorf("nginx worker user: %w", err)
	}
	return strconv.Atoi(u.Gid)
}
