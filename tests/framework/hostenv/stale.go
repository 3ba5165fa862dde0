package hostenv

import (
	"bufio"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// A test that is killed (go test's -timeout, a CI job cancelled, SIGKILL)
// runs no Cleanup: its root under Base, the nginx, PHP-FPM, MariaDB and sshd
// it started, its prefix's users and groups and any mount under its root stay.
// Root sweeps what such a test left before it makes a new root, so one killed
// run does not leave the machine dirty for good. A root belongs to a live
// test while the process named in its owner file (pid and start time, so a
// reused pid does not count) runs; a root without an owner file is left
// alone unless it is older than staleWithoutOwner (a test that has just made
// its root has not written the file yet).

// ownerFile is written in each root by Root: "pid starttime".
const ownerFile = ".owner"

const staleWithoutOwner = 2 * time.Hour

var prefixName = regexp.MustCompile(`^hpt[0-9a-f]{6}$`)

// procStart is a process's start time in clock ticks since boot (field 22
// of /proc/PID/stat), or "" when it does not run.
func procStart(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return ""
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return ""
	}
	return f[19]
}

// writeOwner records this process as the owner of root.
func writeOwner(root string) error {
	pid := os.Getpid()
	return os.WriteFile(filepath.Join(root, ownerFile), []byte(strconv.Itoa(pid)+" "+procStart(pid)+"\n"), 0o644)
}

// ownerAlive says whether root belongs to a running test.
func ownerAlive(root string, now time.Time) bool {
	b, err := os.ReadFile(filepath.Join(root, ownerFile))
	if err != nil {
		fi, serr := os.Stat(root)
		return serr == nil && now.Sub(fi.ModTime()) < staleWithoutOwner
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return false
	}
	pid, err := strconv.Atoi(f[0])
	if err != nil || pid <= 1 {
		return false
	}
	return procStart(pid) == f[1]
}

// SweepStale removes what killed tests left under Base and in the user
// database: roots whose owner no longer runs (their processes killed, mounts
// under them detached, their prefix's users and groups removed, the root
// deleted), and users and groups of a test prefix whose root is gone. It
// returns the prefixes it removed. Errors are ignored: a sweep is best effort,
// and the test that calls it goes on either way.
func SweepStale() []string {
	now := time.Now()
	var swept []string
	entries, _ := os.ReadDir(Base)
	for _, e := range entries {
		if !e.IsDir() || !prefixName.MatchString(e.Name()) {
			continue
		}
		root := filepath.Join(Base, e.Name())
		if ownerAlive(root, now) {
			continue
		}
		killUnder(root, e.Name())
		unmountUnder(root)
		removeUsersNow(e.Name())
		_ = os.RemoveAll(root)
		swept = append(swept, e.Name())
	}
	for _, p := range prefixesInUserDB() {
		if _, err := os.Stat(filepath.Join(Base, p)); os.IsNotExist(err) {
			killUnder(filepath.Join(Base, p), p)
			removeUsersNow(p)
			swept = append(swept, p)
		}
	}
	return swept
}

// killUnder SIGKILLs every process whose command line names root or whose
// user is one of prefix's (PHP-FPM's workers run as the site's user).
func killUnder(root, prefix string) {
	uids := map[string]bool{}
	for _, u := range namesWithPrefix("/etc/passwd", prefix) {
		if pw, err := user.Lookup(u); err == nil {
			uids[pw.Uid] = true
		}
	}
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil || pid <= 1 || pid == os.Getpid() {
			continue
		}
		cmd, _ := os.ReadFile("/proc/" + p.Name() + "/cmdline")
		mine := strings.Contains(string(cmd), root+"/") || strings.HasSuffix(strings.TrimRight(string(cmd), "\x00"), root)
		if !mine && len(uids) > 0 {
			if st, err := os.Stat("/proc/" + p.Name()); err == nil {
				if s, ok := st.Sys().(*syscall.Stat_t); ok && uids[strconv.FormatUint(uint64(s.Uid), 10)] {
					mine = true
				}
			}
		}
		if mine {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	// userdel refuses a user with processes: give the kills a moment.
	time.Sleep(100 * time.Millisecond)
}

// unmountUnder detaches every mount at or below root, deepest first.
func unmountUnder(root string) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var points []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && (fields[4] == root || strings.HasPrefix(fields[4], root+"/")) {
			points = append(points, fields[4])
		}
	}
	f.Close()
	for i := len(points) - 1; i >= 0; i-- {
		_ = exec.Command("umount", "--lazy", points[i]).Run()
	}
}

// prefixesInUserDB lists the test prefixes that name a user or group.
func prefixesInUserDB() []string {
	seen := map[string]bool{}
	var out []string
	for _, file := range []string{"/etc/passwd", "/etc/group"} {
		for _, n := range namesWithPrefix(file, "hpt") {
			if len(n) < 9 || !prefixName.MatchString(n[:9]) || seen[n[:9]] {
				continue
			}
			seen[n[:9]] = true
			out = append(out, n[:9])
		}
	}
	return out
}

// namesWithPrefix lists the names in /etc/passwd or /etc/group that start
// with prefix.
func namesWithPrefix(file, prefix string) []string {
	f, err := os.Open(file)
	if err != nil {
		return nil
	}
	defer f.Close()
	var names []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if name, _, ok := strings.Cut(sc.Text(), ":"); ok && strings.HasPrefix(name, prefix) {
			names = append(names, name)
		}
	}
	return names
}

// removeUsersNow removes the users, then the groups, whose names start with
// prefix.
func removeUsersNow(prefix string) {
	for _, n := range namesWithPrefix("/etc/passwd", prefix) {
		_ = exec.Command("userdel", n).Run()
	}
	for _, n := range namesWithPrefix("/etc/group", prefix) {
		_ = exec.Command("groupdel", n).Run()
	}
}
