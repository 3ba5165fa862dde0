package main

import (
	"bytes"
	"errors"
	"fmt"
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

// hostingBase is where hostenv makes its hosting roots
// (tests/framework/hostenv.Base).
const hostingBase = "/var/lib/hostplane-test"

const libvirtURI = "qemu:///system"

// The files a package root holds for its sweep.
const (
	testBinsFile = ".testbins" // "pid start" of each test binary (exec)
	createdFile  = ".created"  // "netns NAME" / "link NAME" (the ip shim)
)

// runDirName is a run directory of scripts/run-tests.sh (mktemp /tmp/hprXXXX).
var runDirName = regexp.MustCompile(`^hpr[A-Za-z0-9]{4}$`)

// sweep removes what the package root r owns, saying what it removed
// beyond plain files.
func sweep(r string) {
	r, err := filepath.Abs(r)
	if err != nil || !runDirName.MatchString(filepath.Base(filepath.Dir(r))) {
		fmt.Fprintf(os.Stderr, "testsweep: %q is not a package root (a directory in a run directory hprXXXX)\n", r)
		return
	}
	if _, err := os.Stat(r); err != nil {
		return
	}
	say := func(format string, a ...any) {
		fmt.Printf("testsweep: %s: "+format+"\n", append([]any{r}, a...)...)
	}
	o := owner{Root: r, UIDs: map[string]bool{}}
	bins := readBins(r)
	var prefixes []string
	ents, _ := os.ReadDir(hostingBase)
	for _, e := range ents {
		b, _ := os.ReadFile(filepath.Join(hostingBase, e.Name(), ".owner"))
		if e.IsDir() && hostingOwned(e.Name(), string(b), bins) {
			o.Hosting = append(o.Hosting, filepath.Join(hostingBase, e.Name()))
			prefixes = append(prefixes, e.Name())
		}
	}
	passwd, _ := os.ReadFile("/etc/passwd")
	users := namesWithPrefixes(string(passwd), prefixes)
	for _, u := range users {
		if pw, err := user.Lookup(u); err == nil {
			o.UIDs[pw.Uid] = true
		}
	}
	dirs := append([]string{r}, o.Hosting...)

	// Guests first, through libvirt (their QEMU is libvirtd's child, not
	// the test's), then the processes, then guests again: an agent still
	// running may have defined one meanwhile.
	for _, d := range ownedDomains(dirs) {
		say("guest %s (its files under the root): destroyed and undefined", d)
	}
	for round := 0; round < 5; round++ {
		killed := killOwned(o)
		if len(killed) == 0 {
			break
		}
		say("killed %s", strings.Join(killed, ", "))
		time.Sleep(200 * time.Millisecond)
	}
	for _, d := range ownedDomains(dirs) {
		say("guest %s (its files under the root): destroyed and undefined", d)
	}
	for _, p := range ownedPools(dirs) {
		say("storage pool %s (its target under the root): destroyed and undefined", p)
	}
	if f, err := os.Open(filepath.Join(r, createdFile)); err == nil {
		netns, links := created(f)
		f.Close()
		for _, n := range netns {
			if _, err := os.Stat(filepath.Join("/run/netns", n)); err == nil {
				for _, pid := range netnsPids(n) {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
				if out, err := realIP("netns", "del", n); err != nil {
					say("network namespace %s: ip netns del: %v %s", n, err, out)
				} else {
					say("network namespace %s removed", n)
				}
			}
		}
		self, _ := os.Readlink("/proc/self/ns/net")
		for _, l := range links {
			if !removable(l, self) {
				continue
			}
			if _, err := os.Stat(filepath.Join("/sys/class/net", l.Name)); err == nil {
				if out, err := realIP("link", "del", l.Name); err != nil {
					say("link %s: ip link del: %v %s", l.Name, err, out)
				} else {
					say("link %s removed", l.Name)
				}
			}
		}
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	for _, m := range mountsUnder(string(mi), dirs) {
		if out, err := exec.Command("umount", "--lazy", m).CombinedOutput(); err != nil {
			say("umount %s: %v %s", m, err, out)
		} else {
			say("unmounted %s", m)
		}
	}
	for _, u := range users {
		if out, err := exec.Command("userdel", u).CombinedOutput(); err != nil {
			say("userdel %s: %v %s", u, err, out)
		} else {
			say("user %s removed", u)
		}
	}
	group, _ := os.ReadFile("/etc/group")
	for _, g := range namesWithPrefixes(string(group), prefixes) {
		if out, err := exec.Command("groupdel", g).CombinedOutput(); err != nil {
			say("groupdel %s: %v %s", g, err, out)
		} else {
			say("group %s removed", g)
		}
	}
	for _, h := range o.Hosting {
		if err := os.RemoveAll(h); err != nil {
			say("hosting root %s: %v", h, err)
		} else {
			say("hosting root %s removed", h)
		}
	}
	var left []string
	ents, _ = os.ReadDir(r)
	for _, e := range ents {
		if e.Name() != testBinsFile && e.Name() != createdFile {
			left = append(left, e.Name())
		}
	}
	switch {
	case os.Getenv("HOSTPLANE_TEST_KEEP") != "":
		say("kept (HOSTPLANE_TEST_KEEP), with: %s", strings.Join(left, " "))
	case os.RemoveAll(r) != nil:
		say("removing it: %v", os.RemoveAll(r))
	case len(left) > 0:
		say("removed with what was left in it: %s", strings.Join(left, " "))
	}
}

// stale sweeps the run directories in parent whose owner (the run-tests.sh
// that made them, in .owner) no longer runs: each package root in them,
// then the directory.
func stale(parent string) {
	ents, _ := os.ReadDir(parent)
	for _, e := range ents {
		if !e.IsDir() || !runDirName.MatchString(e.Name()) {
			continue
		}
		dir := filepath.Join(parent, e.Name())
		b, err := os.ReadFile(filepath.Join(dir, ".owner"))
		if fi, serr := os.Stat(dir); err != nil || ownerKey(string(b)) == "" {
			// No owner written yet (the directory just made), unless it is
			// an hour old: its run-tests.sh died before writing it.
			if serr != nil || time.Since(fi.ModTime()) < time.Hour {
				continue
			}
		} else if !dead(ownerKey(string(b))) {
			continue // it runs
		}
		fmt.Printf("testsweep: %s: its run-tests.sh (%s) no longer runs\n", dir, ownerKey(string(b)))
		roots, _ := os.ReadDir(dir)
		for _, r := range roots {
			if r.IsDir() {
				sweep(filepath.Join(dir, r.Name()))
			}
		}
		_ = os.RemoveAll(dir)
	}
}

// dead says whether the process of a "pid start" key no longer runs (its
// pid is gone or now another process's).
func dead(key string) bool {
	pid, _, ok := strings.Cut(key, " ")
	n, err := strconv.Atoi(pid)
	return !ok || err != nil || n <= 1 || procKey(n) != key
}

// procKey is process pid's "pid start" (start: field 22 of /proc/PID/stat,
// clock ticks since boot, so a reused pid does not match), or "" when it
// does not run (a zombie, killed and not yet reaped, does not).
func procKey(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	i := bytes.LastIndexByte(b, ')') // the command name may hold spaces
	if i < 0 {
		return ""
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 || f[0] == "Z" || f[0] == "X" {
		return ""
	}
	return strconv.Itoa(pid) + " " + f[19]
}

// recordTestBinary appends this process (about to exec the test binary,
// keeping its pid) to $HP_TEST_ROOT/.testbins.
func recordTestBinary() {
	r := os.Getenv("HP_TEST_ROOT")
	if r == "" {
		return
	}
	f, err := os.OpenFile(filepath.Join(r, testBinsFile), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testsweep exec:", err)
		return
	}
	fmt.Fprintln(f, procKey(os.Getpid()))
	f.Close()
}

func readBins(r string) map[string]bool {
	b, _ := os.ReadFile(filepath.Join(r, testBinsFile))
	bins := map[string]bool{}
	for _, l := range strings.Split(string(b), "\n") {
		if k := ownerKey(l); k != "" {
			bins[k] = true
		}
	}
	return bins
}

// killOwned SIGKILLs the processes o owns and their descendants (not this
// one nor its ancestors) and names them.
func killOwned(o owner) []string {
	spare := map[int]bool{}
	for pid := os.Getpid(); pid > 1; {
		spare[pid] = true
		p, ok := readProc(pid)
		if !ok {
			break
		}
		pid = p.PPID
	}
	procs := map[int]proc{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 1 {
			continue
		}
		if p, ok := readProc(pid); ok {
			procs[pid] = p
		}
	}
	var killed []string
	for _, pid := range ownedPIDs(procs, o, spare) {
		p := procs[pid]
		if syscall.Kill(pid, syscall.SIGKILL) == nil {
			name := "?"
			if f := strings.Fields(p.Cmdline[0]); len(f) > 0 {
				name = strings.TrimSuffix(filepath.Base(f[0]), ":") // "php-fpm: master process (…)" is one argument
			}
			killed = append(killed, fmt.Sprintf("%s (%d)", name, pid))
		}
	}
	return killed
}

// readProc reads a process's /proc entries; false when it is gone or a
// kernel thread.
func readProc(pid int) (proc, bool) {
	dir := "/proc/" + strconv.Itoa(pid)
	st, err := os.ReadFile(dir + "/status")
	if err != nil {
		return proc{}, false
	}
	p := proc{PID: pid}
	for _, l := range strings.Split(string(st), "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) >= 2 && f[0] == "PPid:":
			p.PPID, _ = strconv.Atoi(f[1])
		case len(f) >= 2 && f[0] == "Uid:":
			p.UID = f[1]
		}
	}
	cmd, _ := os.ReadFile(dir + "/cmdline")
	if len(cmd) == 0 {
		return p, false // a kernel thread, or a zombie
	}
	p.Cmdline = strings.Split(strings.TrimRight(string(cmd), "\x00"), "\x00")
	env, _ := os.ReadFile(dir + "/environ")
	p.Environ = strings.Split(strings.TrimRight(string(env), "\x00"), "\x00")
	return p, true
}

func virsh(args ...string) (string, error) {
	out, err := exec.Command("virsh", append([]string{"-q", "-c", libvirtURI}, args...)...).CombinedOutput()
	return string(out), err
}

// ownedDomains destroys and undefines the domains whose XML names a file
// under one of dirs, and names them.
func ownedDomains(dirs []string) []string {
	if _, err := exec.LookPath("virsh"); err != nil {
		return nil
	}
	list, err := virsh("list", "--all", "--name")
	if err != nil {
		return nil // no libvirtd: nothing of it to sweep
	}
	var out []string
	for _, name := range strings.Fields(list) {
		doc, err := virsh("dumpxml", "--inactive", name)
		live, _ := virsh("dumpxml", name)
		if err != nil || !domainOwned(doc, dirs) && !domainOwned(live, dirs) {
			continue
		}
		_, _ = virsh("destroy", name)
		if msg, err := virsh("undefine", name, "--snapshots-metadata", "--nvram", "--managed-save", "--checkpoints-metadata"); err != nil {
			fmt.Fprintf(os.Stderr, "testsweep: undefine %s: %v %s\n", name, err, msg)
		}
		out = append(out, name)
	}
	return out
}

// ownedPools destroys and undefines the storage pools whose target is
// under one of dirs, and names them.
func ownedPools(dirs []string) []string {
	if _, err := exec.LookPath("virsh"); err != nil {
		return nil
	}
	list, err := virsh("pool-list", "--all", "--name")
	if err != nil {
		return nil
	}
	var out []string
	for _, name := range strings.Fields(list) {
		doc, err := virsh("pool-dumpxml", name)
		if err != nil {
			continue
		}
		t := poolTarget(doc)
		owned := false
		for _, d := range dirs {
			owned = owned || under(t, d)
		}
		if !owned {
			continue
		}
		_, _ = virsh("pool-destroy", name)
		if msg, err := virsh("pool-undefine", name); err != nil {
			fmt.Fprintf(os.Stderr, "testsweep: pool-undefine %s: %v %s\n", name, err, msg)
		}
		out = append(out, name)
	}
	return out
}

// netnsPids lists the processes in network namespace n.
func netnsPids(n string) []int {
	out, _ := realIP("netns", "pids", n)
	var pids []int
	for _, f := range strings.Fields(out) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
			pids = append(pids, pid)
		}
	}
	return pids
}

// realIP runs the real ip(8) (not the shim) with args.
func realIP(args ...string) (string, error) {
	ip, err := findRealIP()
	if err != nil {
		return "", err
	}
	out, err := exec.Command(ip, args...).CombinedOutput()
	return string(out), err
}

// findRealIP is the first ip(8) in PATH that is not this program.
func findRealIP() (string, error) {
	self, err := os.Stat("/proc/self/exe")
	if err != nil {
		return "", err
	}
	for _, d := range filepath.SplitList(os.Getenv("PATH") + ":/usr/sbin:/sbin:/usr/bin:/bin") {
		p := filepath.Join(d, "ip")
		st, err := os.Stat(p)
		if err != nil || st.IsDir() || st.Mode()&0o111 == 0 || os.SameFile(st, self) {
			continue
		}
		return p, nil
	}
	return "", errors.New("ip(8) not found in PATH")
}

// ipShim runs the real ip(8) with args and, when it succeeds and
// HP_TEST_ROOT is set, records in the root what it created; it returns
// ip's exit code.
func ipShim(args []string) int {
	ip, err := findRealIP()
	if err != nil {
		fmt.Fprintln(os.Stderr, "ip (testsweep):", err)
		return 127
	}
	r := os.Getenv("HP_TEST_ROOT")
	kind, name := ipCreates(args)
	if r == "" || kind == "" {
		err := syscall.Exec(ip, append([]string{"ip"}, args...), os.Environ())
		fmt.Fprintln(os.Stderr, "ip (testsweep):", err)
		return 127
	}
	cmd := exec.Command(ip, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		fmt.Fprintln(os.Stderr, "ip (testsweep):", err)
		return 127
	}
	// Recorded only once made: a name that was another's already makes
	// ip fail, and is not recorded.
	// A link with the namespace it was made in: the sweep deletes it only
	// from that namespace.
	line := "netns " + name
	if kind == "link" {
		ns, err := os.Readlink("/proc/self/ns/net")
		if err != nil {
			return 0
		}
		line = "link " + name + " " + ns
	}
	f, err := os.OpenFile(filepath.Join(r, createdFile), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err == nil {
		fmt.Fprintln(f, line)
		f.Close()
	}
	return 0
}
