package server

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// dataDirLockName is the file in the data directory a running coordinator
// holds an exclusive flock(2) on. The kernel drops the lock when the process
// dies, however it dies, so a crash leaves no stale lock behind; the pid
// written into it only names the holder in the refusal.
const dataDirLockName = "coordinator.lock"

// lockDataDir takes the data directory's lock, or says which process holds it.
// A second coordinator on a running one's directory would otherwise find the
// FSM marked open, "rebuild" it (unlinking the live one's fsm.db) and then
// wait forever on the Raft log's lock.
func lockDataDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, dataDirLockName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("data dir lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			holder := "another process"
			if b, rerr := os.ReadFile(path); rerr == nil {
				if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); perr == nil && pid > 0 {
					holder = "process " + strconv.Itoa(pid)
				}
			}
			return nil, fmt.Errorf("data dir %s is in use by another coordinator (%s holds %s): stop it, or give this coordinator another --data-dir", dir, holder, path)
		}
		return nil, fmt.Errorf("data dir lock %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return f, nil
}

// adminSocketInUse reports whether a process answers on the unix socket at
// path: a running coordinator's admin socket must not be removed as if it
// were a crashed one's.
func adminSocketInUse(path string) bool {
	c, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// listenHint names the setting to change when addr could not be listened on
// because something else holds it: the flag, and its environment variable,
// which is how `make run` (scripts/run-local.sh, no flags of its own) takes it.
func listenHint(err error, flag string) string {
	if errors.Is(err, syscall.EADDRINUSE) {
		env := "HOSTPLANE_" + strings.ToUpper(strings.ReplaceAll(strings.TrimPrefix(flag, "--"), "-", "_"))
		return " (another coordinator or program listens there: stop it, or give this coordinator another " + flag + " or " + env + ")"
	}
	return ""
}
