// Command testsweep removes what a test process left behind when it died
// (go test's -timeout panic, a SIGKILL, a stopped CI), which runs none of its
// cleanups: guests and storage pools, network namespaces and links, the
// processes it started, hosting roots with their users and groups, mounts
// and temporary directories. scripts/run-tests.sh gives each package (or
// shard) its own root directory, /tmp/hprXXXX/<lane><n> (short: unix socket
// paths under it stay within 108 bytes), as TMPDIR and HP_TEST_ROOT, and
// runs "testsweep sweep ROOT" after the package ends, passed or failed.
// The sweep touches only what belongs to that root (select.go), never
// another package's or another run's:
//   - libvirt domains whose XML names a file under the root (their disks
//     are under the test's t.TempDir), destroyed and undefined, and
//     storage pools whose target path is under it;
//   - processes started with the root as TMPDIR or HP_TEST_ROOT, or whose
//     command line names a path under the root or one of its hosting roots,
//     or that run as one of those roots' users;
//   - hostenv's hosting roots (/var/lib/hostplane-test/hptXXXXXX) whose
//     .owner is one of the package's test binaries (recorded by "testsweep
//     exec", go test's -exec), their mounts, users and groups;
//   - the network namespaces and links the package's tests created with
//     ip(8) (recorded by this program installed as "ip" first in their
//     PATH; a link with the namespace it was made in, deleted only from
//     that one);
//   - the root itself, with every temporary directory in it (kept when
//     HOSTPLANE_TEST_KEEP is set, as the tests keep their files then).
//
// Usage:
//
//	testsweep sweep ROOT...     sweep each package root, then remove it
//	testsweep stale PARENT      sweep the run directories (hpr*) in PARENT
//	                            whose run-tests.sh no longer runs
//	testsweep owner RUNDIR      record this program's parent as RUNDIR's owner
//	testsweep exec BINARY ARGS  (go test -exec) record the test binary in
//	                            $HP_TEST_ROOT/.testbins, then run it
//	testsweep testjson TIMES    go test -json on stdin: its text (as
//	                            go test without -json prints it) on
//	                            stdout, each top-level test's time
//	                            appended to TIMES
//	ip ARGS                     (as a link named ip) run the real ip(8) and
//	                            record in $HP_TEST_ROOT/.created what it made
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

func main() {
	if filepath.Base(os.Args[0]) == "ip" {
		os.Exit(ipShim(os.Args[1:]))
	}
	if len(os.Args) < 3 {
		usage()
	}
	switch os.Args[1] {
	case "sweep":
		for _, r := range os.Args[2:] {
			sweep(r)
		}
	case "stale":
		stale(os.Args[2])
	case "owner":
		if err := os.WriteFile(filepath.Join(os.Args[2], ".owner"), []byte(procKey(os.Getppid())+"\n"), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "testsweep:", err)
			os.Exit(1)
		}
	case "testjson":
		os.Exit(testJSONMain(os.Args[2]))
	case "exec":
		recordTestBinary()
		bin := os.Args[2]
		err := syscall.Exec(bin, os.Args[2:], os.Environ())
		fmt.Fprintf(os.Stderr, "testsweep exec %s: %v\n", bin, err)
		os.Exit(1)
	default:
		usage()
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: testsweep sweep ROOT... | stale PARENT | owner RUNDIR | exec BINARY ARGS... | testjson TIMES")
	os.Exit(2)
}
