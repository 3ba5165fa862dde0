package main

import (
	"bufio"
	"encoding/xml"
	"io"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// What belongs to a package root, decided on data alone (the files, XML and
// /proc entries read by sweep.go), so each rule is tested without a machine.

// under says whether path is dir or lies below it (not a sibling that
// shares its prefix: /tmp/hprAb12/g1 is not under /tmp/hprAb12/g).
func under(path, dir string) bool {
	if dir == "" || !filepath.IsAbs(path) {
		return false
	}
	path = filepath.Clean(path)
	return path == dir || strings.HasPrefix(path, dir+"/")
}

// mentions says whether s names a path under one of dirs anywhere in it (a
// command-line argument such as -drive file=DIR/disk.qcow2,if=virtio or
// --datadir=DIR/data).
func mentions(s string, dirs []string) bool {
	for _, d := range dirs {
		if d == "" {
			continue
		}
		for i := strings.Index(s, d); i >= 0; {
			end := i + len(d)
			if end == len(s) || s[end] == '/' || s[end] == ',' || s[end] == ':' || s[end] == '\x00' {
				return true
			}
			j := strings.Index(s[end:], d)
			if j < 0 {
				break
			}
			i = end + j
		}
	}
	return false
}

// proc is what a process shows in /proc.
type proc struct {
	PID, PPID int
	UID       string
	Cmdline   []string // NUL-separated arguments
	Environ   []string // the environment it was started with
}

// owner is what a package root owns: the root, the hosting roots its test
// binaries made (hostenv's under /var/lib/hostplane-test), and the uids of
// those roots' users.
type owner struct {
	Root    string
	Hosting []string
	UIDs    map[string]bool
}

// ownsProcess says whether p is the package's: it was started with the
// package's root as its TMPDIR, GOTMPDIR or HP_TEST_ROOT (go test, the test binary
// and whatever they started that kept the environment), its command line
// names a path under the root or one of its hosting roots (nginx, PHP-FPM,
// MariaDB, sshd, a coordinator started with a data directory there), or it
// runs as one of the hosting roots' users (PHP-FPM's workers).
func ownsProcess(p proc, o owner) bool {
	for _, e := range p.Environ {
		k, v, _ := strings.Cut(e, "=")
		if (k == "HP_TEST_ROOT" || k == "TMPDIR" || k == "GOTMPDIR") && under(v, o.Root) {
			return true
		}
	}
	dirs := append([]string{o.Root}, o.Hosting...)
	for _, a := range p.Cmdline {
		if mentions(a, dirs) {
			return true
		}
	}
	return o.UIDs[p.UID]
}

// ownedPIDs lists the processes of procs the package owns: those
// ownsProcess says are its own, and every descendant of one (a process
// whose parent chain reaches an owned one), leaving out spare (the sweep
// and its ancestors). The descendants matter because a daemon may drop
// what ownsProcess reads: nginx clears its workers' environment and names
// them "nginx: worker process" under www-data, so a worker of a master
// killed alone would live on, reparented to init, holding its port.
func ownedPIDs(procs map[int]proc, o owner, spare map[int]bool) []int {
	owned := map[int]bool{}
	for pid, p := range procs {
		if !spare[pid] && ownsProcess(p, o) {
			owned[pid] = true
		}
	}
	var out []int
	for pid := range procs {
		if spare[pid] {
			continue
		}
		// Walk up the parent chain (at most len(procs) steps: a chain
		// is finite, but /proc read at different instants need not be
		// consistent).
		for q, n := pid, 0; q > 1 && n <= len(procs); n++ {
			if owned[q] {
				out = append(out, pid)
				break
			}
			pp, ok := procs[q]
			if !ok {
				break
			}
			q = pp.PPID
		}
	}
	sort.Ints(out)
	return out
}

// xmlPaths lists every attribute value and text of a libvirt XML document
// that is an absolute path (a disk's source, a pool's target, a console
// log, a kernel).
func xmlPaths(doc string) []string {
	var out []string
	d := xml.NewDecoder(strings.NewReader(doc))
	for {
		tok, err := d.Token()
		if err != nil {
			return out
		}
		switch t := tok.(type) {
		case xml.StartElement:
			for _, a := range t.Attr {
				if filepath.IsAbs(a.Value) {
					out = append(out, a.Value)
				}
			}
		case xml.CharData:
			if s := strings.TrimSpace(string(t)); filepath.IsAbs(s) {
				out = append(out, s)
			}
		}
	}
}

// domainOwned says whether a domain's XML names a file under one of dirs
// (its disks under the test's temporary directory, its console log).
func domainOwned(doc string, dirs []string) bool {
	for _, p := range xmlPaths(doc) {
		for _, d := range dirs {
			if under(p, d) {
				return true
			}
		}
	}
	return false
}

// poolTarget is a storage pool's target path (<pool><target><path>).
func poolTarget(doc string) string {
	var p struct {
		Target struct {
			Path string `xml:"path"`
		} `xml:"target"`
	}
	if xml.Unmarshal([]byte(doc), &p) != nil {
		return ""
	}
	return strings.TrimSpace(p.Target.Path)
}

// link is a link the ip(8) shim recorded: its name and the network
// namespace the shim ran in (/proc/self/ns/net's link, "net:[4026531840]").
type link struct{ Name, NS string }

// created reads what the ip(8) shim recorded: "netns NAME" and "link NAME
// NS" lines.
func created(r io.Reader) (netns []string, links []link) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || !validIfName(f[1]) {
			continue
		}
		switch {
		case f[0] == "netns" && len(f) == 2:
			netns = append(netns, f[1])
		case f[0] == "link" && len(f) == 3:
			links = append(links, link{f[1], f[2]})
		}
	}
	return netns, links
}

// removable says whether the sweep, running in network namespace selfNS,
// may delete a recorded link: only one made in that same namespace (an
// "ip link add" through "ip netns exec", nsenter or a process inside a
// test's namespace made its link there, and a link of the same name in
// the sweep's namespace is another's).
func removable(l link, selfNS string) bool { return l.NS != "" && l.NS == selfNS }

var ifName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$`)

// validIfName: a name ip(8) takes as one argument, of a link (15 bytes at
// most) or a namespace; nothing that could read as an option or a path.
func validIfName(s string) bool { return ifName.MatchString(s) }

// ipCreates says what an ip(8) command line creates in this network
// namespace, when it succeeds: ("netns", NAME) for "ip netns add NAME",
// ("link", NAME) for "ip link add [dev|name] NAME ..." or "ip link add link
// PARENT name NAME ...". A command run in another namespace (-n, -netns)
// creates nothing the sweep removes: it goes with its namespace.
func ipCreates(args []string) (kind, name string) {
	i := 0
	for ; i < len(args) && strings.HasPrefix(args[i], "-"); i++ {
		switch strings.TrimLeft(args[i], "-") {
		case "n", "netns":
			return "", ""
		case "b", "batch", "rc", "rcvbuf", "l", "loops", "f", "family":
			i++ // an option with a value
		}
	}
	rest := args[i:]
	if len(rest) < 3 || rest[1] != "add" {
		return "", ""
	}
	r := rest[2:]
	switch rest[0] {
	case "netns":
		name = r[0]
	case "link":
		switch {
		case r[0] == "dev" || r[0] == "name":
			if len(r) > 1 {
				name = r[1]
			}
		case r[0] == "link": // a parent first: the new link is "name X"
			for k := 2; k+1 < len(r); k++ {
				if r[k] == "name" {
					name = r[k+1]
					break
				}
			}
		default:
			name = r[0]
		}
	default:
		return "", ""
	}
	if !validIfName(name) || name == "type" {
		return "", ""
	}
	return rest[0], name
}

// ownerKey is a process's "pid starttime" as the exec wrapper and
// hostenv's .owner files write it.
func ownerKey(s string) string { return strings.Join(strings.Fields(s), " ") }

// hostingPrefix matches hostenv's roots and user-name prefixes.
var hostingPrefix = regexp.MustCompile(`^hpt[0-9a-f]{6}$`)

// hostingOwned says whether a hosting root (its name and .owner content)
// was made by one of the package's test binaries (bins: "pid start" keys).
func hostingOwned(name, ownerFile string, bins map[string]bool) bool {
	return hostingPrefix.MatchString(name) && bins[ownerKey(ownerFile)]
}

// namesWithPrefixes lists the names in an /etc/passwd or /etc/group
// content that start with one of prefixes.
func namesWithPrefixes(db string, prefixes []string) []string {
	var out []string
	for _, line := range strings.Split(db, "\n") {
		name, _, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		for _, p := range prefixes {
			if p != "" && strings.HasPrefix(name, p) {
				out = append(out, name)
				break
			}
		}
	}
	return out
}

// mountsUnder lists the mount points of a mountinfo content at or under
// one of dirs, deepest first (so each is unmounted before the one it is in).
func mountsUnder(mountinfo string, dirs []string) []string {
	var out []string
	for _, line := range strings.Split(mountinfo, "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := strings.ReplaceAll(f[4], `\040`, " ")
		for _, d := range dirs {
			if under(mp, d) {
				out = append(out, mp)
				break
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return strings.Count(out[i], "/") > strings.Count(out[j], "/") })
	return out
}
