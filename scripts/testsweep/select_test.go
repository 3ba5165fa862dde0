package main

import (
	"os"
	"slices"
	"strings"
	"testing"
)

const root = "/tmp/hprAb12/g1"

func TestUnder(t *testing.T) {
	for _, c := range []struct {
		path string
		want bool
	}{
		{root, true},
		{root + "/", true},
		{root + "/TestX123/001/disk.qcow2", true},
		{root + "/../g1/x", true},
		{"/tmp/hprAb12/g10/x", false}, // a sibling sharing the prefix
		{"/tmp/hprAb12/g", false},
		{"/tmp/hprAb12", false},
		{"/tmp/TestX123/001/disk.qcow2", false},
		{"tmp/hprAb12/g1/x", false}, // not absolute
		{"", false},
	} {
		if got := under(c.path, root); got != c.want {
			t.Errorf("under(%q, %q) = %v, want %v", c.path, root, got, c.want)
		}
	}
}

func TestOwnsProcess(t *testing.T) {
	o := owner{Root: root, Hosting: []string{"/var/lib/hostplane-test/hpt0a1b2c"}, UIDs: map[string]bool{"1042": true}}
	base := proc{PID: 100, PPID: 1, UID: "0", Cmdline: []string{"/usr/bin/sleep", "100"}, Environ: []string{"PATH=/usr/bin", "TMPDIR=/tmp"}}
	with := func(f func(*proc)) proc {
		p := base
		p.Cmdline, p.Environ = slices.Clone(base.Cmdline), slices.Clone(base.Environ)
		f(&p)
		return p
	}
	for _, c := range []struct {
		what string
		p    proc
		want bool
	}{
		{"another process", base, false},
		{"TMPDIR the root (go test, the test binary, what they started)", with(func(p *proc) { p.Environ[1] = "TMPDIR=" + root }), true},
		{"TMPDIR under the root", with(func(p *proc) { p.Environ[1] = "TMPDIR=" + root + "/TestX1/001" }), true},
		{"GOTMPDIR the root", with(func(p *proc) { p.Environ = append(p.Environ, "GOTMPDIR="+root) }), true},
		{"HP_TEST_ROOT the root", with(func(p *proc) { p.Environ = append(p.Environ, "HP_TEST_ROOT="+root) }), true},
		{"TMPDIR another package's root", with(func(p *proc) { p.Environ[1] = "TMPDIR=/tmp/hprAb12/g10" }), false},
		{"HP_TEST_ROOT another run's root", with(func(p *proc) { p.Environ = append(p.Environ, "HP_TEST_ROOT=/tmp/hprZz99/g1") }), false},
		{"another variable naming the root", with(func(p *proc) { p.Environ = append(p.Environ, "OLDPWD="+root) }), false},
		{"a data directory under the root", with(func(p *proc) {
			p.Cmdline = []string{"hostplane-coordinator", "--data-dir", root + "/hptest-1-2/hpfw3/c1"}
		}), true},
		{"a path under the root inside an argument", with(func(p *proc) {
			p.Cmdline = []string{"qemu-system-x86_64", "-drive", "file=" + root + "/TestX1/001/pool/d.qcow2,if=virtio"}
		}), true},
		{"the root itself as an argument", with(func(p *proc) { p.Cmdline = []string{"rm", "-rf", root} }), true},
		{"a sibling's path", with(func(p *proc) { p.Cmdline = []string{"mariadbd", "--datadir=/tmp/hprAb12/g10/x"} }), false},
		{"a hosting root's server", with(func(p *proc) {
			p.Cmdline = []string{"mariadbd", "--datadir=/var/lib/hostplane-test/hpt0a1b2c/mysql/data"}
		}), true},
		{"another hosting root's server", with(func(p *proc) {
			p.Cmdline = []string{"mariadbd", "--datadir=/var/lib/hostplane-test/hpt0a1b2d/mysql/data"}
		}), false},
		{"a hosting user's process (a PHP-FPM worker)", with(func(p *proc) { p.UID = "1042" }), true},
		{"another user's process", with(func(p *proc) { p.UID = "1043" }), false},
	} {
		if got := ownsProcess(c.p, o); got != c.want {
			t.Errorf("%s: ownsProcess = %v, want %v (%+v)", c.what, got, c.want, c.p)
		}
	}
}

func TestDomainOwned(t *testing.T) {
	dom := func(disk, log string) string {
		return `<domain type='qemu'><name>t0dcd08-stubborn</name><os><kernel>/work/main/.cache/test-guest/vmlinuz</kernel></os>
<devices><disk type='file' device='disk'><source file='` + disk + `'/></disk>
<serial type='file'><source path='` + log + `'/></serial></devices></domain>`
	}
	for _, c := range []struct {
		what, doc string
		want      bool
	}{
		{"its disk under the root", dom(root+"/TestForcedStopAndPasswordReset123/001/pool/t0dcd08-stubborn.qcow2", "/var/log/x.log"), true},
		{"its console log under the root", dom("/var/lib/libvirt/images/a.qcow2", root+"/TestX/001/console.log"), true},
		{"another package's guest", dom("/tmp/hprAb12/g10/TestX/001/pool/a.qcow2", "/tmp/hprAb12/g10/c.log"), false},
		{"a guest of a test run outside run-tests.sh", dom("/tmp/TestForcedStop1/001/pool/a.qcow2", "/tmp/TestForcedStop1/001/c.log"), false},
		{"the root in a name, not a path", `<domain><name>x</name><description>` + root + `x</description></domain>`, false},
		{"not XML", "error: failed to get domain", false},
	} {
		if got := domainOwned(c.doc, []string{root}); got != c.want {
			t.Errorf("%s: domainOwned = %v, want %v", c.what, got, c.want)
		}
	}
}

func TestPoolTarget(t *testing.T) {
	doc := `<pool type='dir'><name>t0dcd08-pool</name><target><path>` + root + `/TestX1/001/pool</path><permissions><mode>0711</mode></permissions></target></pool>`
	if got := poolTarget(doc); got != root+"/TestX1/001/pool" {
		t.Errorf("poolTarget = %q", got)
	}
	if got := poolTarget("error"); got != "" {
		t.Errorf("poolTarget of no XML = %q, want none", got)
	}
}

func TestIPCreates(t *testing.T) {
	for _, c := range []struct {
		args       string
		kind, name string
	}{
		{"netns add t0a1b2c-ns", "netns", "t0a1b2c-ns"},
		{"link add t0a1b2c-br type bridge", "link", "t0a1b2c-br"},
		{"link add t0a1b2c-vh type veth peer name t0a1b2c-vn", "link", "t0a1b2c-vh"},
		{"link add dev hp1a2b3-br type bridge", "link", "hp1a2b3-br"},
		{"link add name hp1a2b3-h1 type veth peer name hp1a2b3-n1", "link", "hp1a2b3-h1"},
		{"link add link eth0 name mv0 type macvlan", "link", "mv0"},
		{"-4 route add unreachable 198.51.100.0/24", "", ""},
		{"-n t0a1b2c-ns link add x type dummy", "", ""}, // in another namespace: goes with it
		{"-netns t0a1b2c-ns link add x type dummy", "", ""},
		{"netns exec t0a1b2c-ns ip link add x type dummy", "", ""},
		{"link set t0a1b2c-vh master t0a1b2c-br up", "", ""},
		{"link del t0a1b2c-br", "", ""},
		{"netns add ../../etc", "", ""},
		{"link add -x type dummy", "", ""},
		{"link add type bridge", "", ""},
		{"netns add", "", ""},
	} {
		kind, name := ipCreates(strings.Fields(c.args))
		if kind != c.kind || name != c.name {
			t.Errorf("ip %s: (%q, %q), want (%q, %q)", c.args, kind, name, c.kind, c.name)
		}
	}
}

func TestCreated(t *testing.T) {
	const root, other = "net:[4026531840]", "net:[4026532301]"
	netns, links := created(strings.NewReader("netns t0a1b2c-ns\nlink t0a1b2c-br " + root + "\nlink t0a1b2c-in " + other +
		"\nlink old-format\nbogus\nnetns ../x\nlink -rf " + root + "\n"))
	if !slices.Equal(netns, []string{"t0a1b2c-ns"}) ||
		!slices.Equal(links, []link{{"t0a1b2c-br", root}, {"t0a1b2c-in", other}}) {
		t.Errorf("created: %q %q", netns, links)
	}
	for _, c := range []struct {
		l    link
		want bool
	}{
		{link{"t0a1b2c-br", root}, true},
		// made through ip netns exec (or nsenter, or by a process in a
		// test's namespace): a root-namespace link of that name is another's
		{link{"t0a1b2c-in", other}, false},
		{link{"br0", ""}, false},
	} {
		if got := removable(c.l, root); got != c.want {
			t.Errorf("removable(%+v) from %s = %v, want %v", c.l, root, got, c.want)
		}
	}
}

func TestHostingOwned(t *testing.T) {
	bins := map[string]bool{"4242 900001": true}
	for _, c := range []struct {
		name, owner string
		want        bool
	}{
		{"hpt0a1b2c", "4242 900001\n", true},
		{"hpt0a1b2c", "4242  900001", true},
		{"hpt0a1b2c", "4242 900002\n", false}, // the pid again, another process
		{"hpt0a1b2c", "4243 900001\n", false},
		{"hpt0a1b2c", "", false}, // no owner yet
		{"hptest-4242-900001", "4242 900001\n", false},
		{"other", "4242 900001\n", false},
	} {
		if got := hostingOwned(c.name, c.owner, bins); got != c.want {
			t.Errorf("hostingOwned(%q, %q) = %v, want %v", c.name, c.owner, got, c.want)
		}
	}
}

func TestNamesWithPrefixes(t *testing.T) {
	db := "root:x:0:0::/root:/bin/bash\nhpt0a1b2cc1:x:1042:1042::/x:/usr/sbin/nologin\nhpt0a1b2csys:x:998:998::/:/x\nhpt0a1b2dc1:x:1043:1043::/x:/x\nwww-data:x:33:33::/:/x\n"
	if got := namesWithPrefixes(db, []string{"hpt0a1b2c"}); !slices.Equal(got, []string{"hpt0a1b2cc1", "hpt0a1b2csys"}) {
		t.Errorf("namesWithPrefixes: %q", got)
	}
	if got := namesWithPrefixes(db, nil); len(got) != 0 {
		t.Errorf("namesWithPrefixes without prefixes: %q", got)
	}
}

func TestMountsUnder(t *testing.T) {
	mi := `22 1 0:21 / / rw - ext4 /dev/vda rw
90 22 0:50 / /tmp/hprAb12/g1/TestX/001/m rw - tmpfs tmpfs rw
91 90 0:51 / /tmp/hprAb12/g1/TestX/001/m/inner rw - tmpfs tmpfs rw
92 22 0:52 / /tmp/hprAb12/g10/m rw - tmpfs tmpfs rw
93 22 0:53 / /var/lib/hostplane-test/hpt0a1b2c/home/c1 rw - bind /dev/vda rw
94 22 0:54 / /tmp/hprAb12/g1/with\040space rw - tmpfs tmpfs rw
`
	got := mountsUnder(mi, []string{root, "/var/lib/hostplane-test/hpt0a1b2c"})
	want := []string{"/tmp/hprAb12/g1/TestX/001/m/inner", "/tmp/hprAb12/g1/TestX/001/m", "/var/lib/hostplane-test/hpt0a1b2c/home/c1", "/tmp/hprAb12/g1/with space"}
	if !slices.Equal(got, want) {
		t.Errorf("mountsUnder:\n got %q\nwant %q", got, want)
	}
}

func TestDead(t *testing.T) {
	self := procKey(os.Getpid())
	if self == "" || dead(self) {
		t.Errorf("this process (%q) reads as dead", self)
	}
	pid, start, _ := strings.Cut(self, " ")
	if !dead(pid + " " + start + "1") {
		t.Error("this pid with another start time (a pid given again) reads as alive")
	}
	for _, k := range []string{"", "x y", "0 1", "-5 3"} {
		if !dead(k) {
			t.Errorf("%q reads as alive", k)
		}
	}
}

// TestOwnedPIDsTakesDescendants: a process the package owns takes its
// descendants with it, though they show nothing of the package (an nginx
// worker: environment cleared, its own title, www-data); nothing else, not
// a child of a spared process (the sweep's own ancestors) nor of init.
func TestOwnedPIDsTakesDescendants(t *testing.T) {
	o := owner{Root: root}
	procs := map[int]proc{
		10: {PID: 10, PPID: 1, UID: "0", Cmdline: []string{"nginx: master process nginx -c " + root + "/TestX1/001/nginx.conf"}},
		11: {PID: 11, PPID: 10, UID: "33", Cmdline: []string{"nginx: worker process"}},
		12: {PID: 12, PPID: 11, UID: "33", Cmdline: []string{"sh"}},
		20: {PID: 20, PPID: 1, UID: "33", Cmdline: []string{"nginx: worker process"}}, // another nginx's
		30: {PID: 30, PPID: 1, UID: "0", Cmdline: []string{"bash", "run-tests.sh"}, Environ: []string{"TMPDIR=" + root}},
		31: {PID: 31, PPID: 30, UID: "0", Cmdline: []string{"testsweep", "sweep", root}},
		40: {PID: 40, PPID: 31, UID: "0", Cmdline: []string{"virsh", "list"}},
		50: {PID: 50, PPID: 51, UID: "0", Cmdline: []string{"loop"}}, // a parent chain that loops
		51: {PID: 51, PPID: 50, UID: "0", Cmdline: []string{"loop"}},
	}
	got := ownedPIDs(procs, o, map[int]bool{30: true, 31: true})
	if want := []int{10, 11, 12}; !slices.Equal(got, want) {
		t.Errorf("ownedPIDs = %v, want %v (the master, its worker and the worker's child)", got, want)
	}
}
