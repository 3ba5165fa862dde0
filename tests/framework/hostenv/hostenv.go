// Package hostenv starts the real servers of a hosting node for tests
// (MariaDB, sshd; nginx and PHP-FPM are the agent's) without systemd, each in
// a per-test directory with per-test ports and name prefixes, and removes
// everything afterwards; it also holds the clients the tests check a node
// with (SFTP, HTTP with a Host, a database login). A missing program fails
// the test saying how to install it.
package hostenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hostplane/hostplane/tests/framework"
)

// Install is how to install what these tests need.
const Install = "run scripts/install-hosting.sh as root (or make test)"

// Need fails the test unless every program is found and the test runs as root.
func Need(tb testing.TB, progs ...string) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Fatalf("hosting tests run as root (they create users and start servers); %s", Install)
	}
	for _, p := range progs {
		if _, err := exec.LookPath(p); err != nil {
			tb.Fatalf("%s not found: %s", p, Install)
		}
	}
}

// Base is where test roots live: not under /tmp, since every component of an
// SFTP chroot must be root-owned and not world-writable.
const Base = "/var/lib/hostplane-test"

// Root makes a fresh hosting root for the test (root:root 0755 all the way
// down) and a short random prefix for its user and group names; both are
// removed when the test ends. It first sweeps what killed tests left
// (SweepStale).
func Root(tb testing.TB) (root, prefix string) {
	tb.Helper()
	if swept := SweepStale(); len(swept) > 0 {
		tb.Logf("hostenv: removed what killed test runs left under %s: %s", Base, strings.Join(swept, " "))
	}
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	prefix = "hpt" + hex.EncodeToString(b)
	if err := os.MkdirAll(Base, 0o755); err != nil {
		tb.Fatal(err)
	}
	_ = os.Chmod(Base, 0o755)
	root = filepath.Join(Base, prefix)
	if err := os.Mkdir(root, 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := writeOwner(root); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		_ = os.RemoveAll(root)
		_ = os.Remove(Base) // only if empty: other tests may run
	})
	return root, prefix
}

// Run runs a command and fails the test with its output on error.
func Run(tb testing.TB, name string, args ...string) string {
	tb.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		tb.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// WaitFile waits up to d for a file to exist.
func WaitFile(path string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("%s did not appear within %s", path, d)
}

// Ctx is a context ending with the test.
func Ctx(tb testing.TB) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(cancel)
	return ctx
}

// MariaDB starts a private mariadbd on a unix socket and a TCP port under
// dir; it is shut down and its data removed when the test ends.
func MariaDB(tb testing.TB, dir string, port int) (socket string) {
	tb.Helper()
	socket, _ = mariaDB(tb, dir, port)
	return socket
}

func mariaDB(tb testing.TB, dir string, port int) (socket string, done <-chan struct{}) {
	tb.Helper()
	Need(tb, "mariadb-install-db", "mariadbd", "mariadb", "mariadb-admin")
	m := filepath.Join(dir, "mysql")
	if err := os.MkdirAll(m, 0o755); err != nil {
		tb.Fatal(err)
	}
	// Its own tmpdir: with --no-defaults both programs would put their
	// temporary tables in /tmp, which every test's MariaDB shares.
	tmp := filepath.Join(m, "tmp")
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		tb.Fatal(err)
	}
	installDB(tb, m+"/data", tmp)
	return startMariaDB(tb, m, port)
}

// startMariaDB starts mariadbd on the datadir under m (mysql/ of a test's
// root) with the extra options, and waits until it answers on its socket;
// it is stopped when the test ends.
func startMariaDB(tb testing.TB, m string, port int, extra ...string) (socket string, done <-chan struct{}) {
	tb.Helper()
	socket = filepath.Join(m, "mysqld.sock")
	args := []string{"--no-defaults", "--datadir=" + m + "/data", "--tmpdir=" + filepath.Join(m, "tmp"), "--socket=" + socket,
		fmt.Sprintf("--port=%d", port), "--bind-address=127.0.0.1", "--user=root", "--pid-file=" + m + "/mysqld.pid",
		"--log-error=" + m + "/error.log", "--innodb-buffer-pool-size=32M", "--innodb-log-file-size=8M", "--skip-name-resolve",
		"--performance-schema=OFF"}
	done = startDaemon(tb, exec.Command("mariadbd", append(args, extra...)...), nil, 20*time.Second)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if exec.Command("mariadb-admin", "--no-defaults", "--socket="+socket, "-uroot", "ping").Run() == nil {
			return socket, done
		}
		select {
		case <-done:
			b, _ := os.ReadFile(m + "/error.log")
			tb.Fatalf("mariadbd exited:\n%s", b)
		default:
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(m + "/error.log")
			tb.Fatalf("mariadbd did not answer within 20 s:\n%s", b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// StopMariaDB shuts the Env's MariaDB down (its data kept) and waits until
// it has exited: a node's MariaDB stopped, as an operator or a crash leaves
// it. StartMariaDB starts it again.
func (e *Env) StopMariaDB(tb testing.TB) {
	tb.Helper()
	if e.dbDone == nil {
		tb.Fatal("hostenv: StopMariaDB: MariaDB is not running")
	}
	Run(tb, "mariadb-admin", "--no-defaults", "--socket="+e.DBSocket, "-uroot", "shutdown")
	select {
	case <-e.dbDone:
	case <-time.After(30 * time.Second):
		tb.Fatal("hostenv: mariadbd still running 30 s after its shutdown")
	}
	e.dbDone = nil
}

// StartMariaDB starts the Env's MariaDB again, on the same data, socket
// and port, with the extra mariadbd options (--skip-networking: no TCP
// port); it is stopped when the test ends.
func (e *Env) StartMariaDB(tb testing.TB, extra ...string) {
	tb.Helper()
	if e.dbDone != nil {
		tb.Fatal("hostenv: StartMariaDB: MariaDB is running (StopMariaDB first)")
	}
	_, e.dbDone = startMariaDB(tb, filepath.Join(e.Root, "mysql"), e.DBPort, extra...)
}

// bootstrapped is the datadir of the first mariadb-install-db in this
// process, kept in memory (≈ 26 MiB): the bootstrap is the same for every
// test (nothing in the datadir names its path, port or socket) and took
// ≈ 10 s of wall of each test's ≈ 1 CPU-s under CI's load, so the tests
// after the first start from a copy of it written into their own datadir
// (their servers stay separate, each on a datadir of its own).
var bootstrapped struct {
	sync.Mutex
	files []datadirFile // nil until a bootstrap succeeded
}

// SeedEnv names a directory, made by scripts/run-tests.sh for its run (and
// removed with it), where the first test process to bootstrap a MariaDB
// datadir leaves a copy for the test processes after it: each hosting
// package paid its own bootstrap (13-16 s of its first test's set-up at
// load 20-25, ≈ 4 s for each test after it), and the hosting lane runs four
// such packages one after another.
const SeedEnv = "HOSTPLANE_TEST_MARIADB_SEED"

// datadirFile is a directory (data nil) or a file of a datadir.
type datadirFile struct {
	rel  string
	mode fs.FileMode
	data []byte
}

// installDB makes a freshly bootstrapped MariaDB datadir at data (which
// must not exist), with tmp as the bootstrap's tmpdir: mariadb-install-db
// the first time in this process (or a copy of the run's seed, SeedEnv),
// a copy of what it made after that.
func installDB(tb testing.TB, data, tmp string) {
	tb.Helper()
	bootstrapped.Lock()
	defer bootstrapped.Unlock()
	if bootstrapped.files == nil {
		files, err := seeded(tb, data, tmp)
		if err != nil {
			tb.Fatal(err)
		}
		bootstrapped.files = files
	}
	if err := writeDatadir(data, bootstrapped.files); err != nil {
		tb.Fatalf("copying the bootstrapped MariaDB datadir: %v", err)
	}
}

// seeded is a bootstrapped datadir's files: the run's seed (SeedEnv) when
// it has one, else those of a mariadb-install-db at data (removed after),
// then left as the seed when SeedEnv is set. Test processes take the
// seed's lock (flock) in turn, so one bootstraps and the others read.
func seeded(tb testing.TB, data, tmp string) ([]datadirFile, error) {
	tb.Helper()
	dir := os.Getenv(SeedEnv)
	if dir == "" {
		return bootstrap(tb, data, tmp)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	defer lock.Close() // and with it the lock
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return nil, err
	}
	seed, done := filepath.Join(dir, "data"), filepath.Join(dir, "done")
	if _, err := os.Stat(done); err == nil {
		return readDatadir(seed)
	}
	files, err := bootstrap(tb, data, tmp)
	if err != nil {
		return nil, err
	}
	// A seed left half-written (its process killed) has no done file: it
	// is made again.
	if err := os.RemoveAll(seed); err != nil {
		return nil, err
	}
	if err := writeDatadir(seed, files); err != nil {
		return nil, err
	}
	return files, os.WriteFile(done, nil, 0o600)
}

// bootstrap runs mariadb-install-db at data (which must not exist) and
// returns what it made, removing it.
func bootstrap(tb testing.TB, data, tmp string) ([]datadirFile, error) {
	tb.Helper()
	install := []string{"--no-defaults", "--datadir=" + data, "--tmpdir=" + tmp, "--user=root",
		"--auth-root-authentication-method=socket", "--skip-test-db", "--skip-name-resolve", "--innodb-log-file-size=8M"}
	if out, err := exec.Command("mariadb-install-db", install...).CombinedOutput(); err != nil {
		// MariaDB 10.11.19's bootstrap crashed once in a CI run (signal 11 in
		// Aria's drop of a temporary table) while other tests bootstrapped
		// theirs: one more try on an empty datadir before failing, logged.
		tb.Logf("mariadb-install-db failed (%v); trying once more on an empty datadir:\n%s", err, out)
		if err := os.RemoveAll(data); err != nil {
			return nil, err
		}
		Run(tb, "mariadb-install-db", install...)
	}
	files, err := readDatadir(data)
	if err != nil {
		return nil, fmt.Errorf("reading the bootstrapped MariaDB datadir: %w", err)
	}
	return files, os.RemoveAll(data)
}

// readDatadir reads the datadir at data into memory.
func readDatadir(data string) ([]datadirFile, error) {
	var files []datadirFile
	err := filepath.WalkDir(data, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		f := datadirFile{mode: fi.Mode()}
		if f.rel, err = filepath.Rel(data, p); err != nil {
			return err
		}
		switch {
		case d.IsDir():
		case fi.Mode().IsRegular():
			if f.data, err = os.ReadFile(p); err != nil {
				return err
			}
			if f.data == nil {
				f.data = []byte{}
			}
		default:
			return fmt.Errorf("%s: neither a file nor a directory (%s)", p, fi.Mode())
		}
		files = append(files, f)
		return nil
	})
	return files, err
}

// writeDatadir writes files as a datadir at data, which must not exist.
func writeDatadir(data string, files []datadirFile) error {
	for _, f := range files {
		p := filepath.Join(data, f.rel)
		var err error
		if f.data == nil {
			err = os.Mkdir(p, f.mode)
		} else {
			err = os.WriteFile(p, f.data, f.mode)
		}
		if err == nil {
			err = os.Chmod(p, f.mode) // not narrowed by the umask
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// startDaemon starts cmd and stops it when the test ends (SIGTERM, SIGKILL
// after grace); logf, when not nil, is closed once cmd has exited. The
// channel is closed when cmd exits. Like framework.StartInGroup's, the
// process is SIGKILLed when the test binary dies (Pdeathsig): a test killed by
// go test's -timeout runs no Cleanup.
func startDaemon(tb testing.TB, cmd *exec.Cmd, logf *os.File, grace time.Duration) <-chan struct{} {
	tb.Helper()
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		if logf != nil {
			logf.Close()
		}
		close(done)
	}()
	tb.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(grace):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	return done
}

// SSHD starts sshd on 127.0.0.1:port allowing only members of group, with
// the hosting node's Match block (include) for them. It runs in a private
// mount namespace with its own /run/sshd, so the host is untouched.
func SSHD(tb testing.TB, dir string, port int, group, include string) {
	tb.Helper()
	Need(tb, "sshd", "ssh-keygen", "unshare")
	d := filepath.Join(dir, "ssh")
	if err := os.MkdirAll(d, 0o755); err != nil {
		tb.Fatal(err)
	}
	Run(tb, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(d, "ssh_host_ed25519_key"))
	conf := fmt.Sprintf(`Port %d
ListenAddress 127.0.0.1
HostKey %s/ssh_host_ed25519_key
PidFile %s/sshd.pid
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication no
PermitRootLogin no
AllowGroups %s
Subsystem sftp internal-sftp
Include %s
`, port, d, d, group, include)
	if err := os.WriteFile(filepath.Join(d, "sshd_config"), []byte(conf), 0o600); err != nil {
		tb.Fatal(err)
	}
	sshd, _ := exec.LookPath("sshd")
	if out, err := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-ec",
		`mount -t tmpfs -o mode=0755 tmpfs /run && mkdir -m 0755 /run/sshd && exec "$0" -t -f "$1"`, sshd,
		filepath.Join(d, "sshd_config")).CombinedOutput(); err != nil {
		tb.Fatalf("sshd -t: %v\n%s", err, out)
	}
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-ec",
		`mount -t tmpfs -o mode=0755 tmpfs /run && mkdir -m 0755 /run/sshd && exec "$0" -D -e -f "$1"`, sshd,
		filepath.Join(d, "sshd_config"))
	logf, _ := os.Create(filepath.Join(d, "sshd.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	startDaemon(tb, cmd, logf, 10*time.Second)
	if err := WaitFile(filepath.Join(d, "sshd.pid"), 10*time.Second); err != nil {
		b, _ := os.ReadFile(filepath.Join(d, "sshd.log"))
		tb.Fatalf("sshd: %v\n%s", err, b)
	}
}

// Env is a hosting node's test environment: a root, a name prefix, ports and
// a running MariaDB.
type Env struct {
	Root      string
	Prefix    string // user and group names of this test start with it
	HTTPAddr  string // for nginx
	SSHAddr   string // for sshd
	DBPort    int
	DBSocket  string
	SFTPGroup string
	MailSpool string

	dbDone <-chan struct{} // closed when the running mariadbd exits (nil: stopped)
}

func port(tb testing.TB) (string, int) {
	a := framework.FreeAddr(tb, "tcp")
	_, p, _ := net.SplitHostPort(a)
	n, _ := strconv.Atoi(p)
	return a, n
}

// New makes a fresh root and prefix, picks ports and starts MariaDB; the
// users and groups of the prefix are removed, and nginx and PHP-FPM masters
// left running under the root are stopped, when the test ends.
func New(tb testing.TB) *Env {
	tb.Helper()
	Need(tb, "nginx", "php-fpm8.2", "useradd", "chpasswd", "usermod", "userdel", "groupadd")
	root, prefix := Root(tb)
	RemoveUsers(tb, prefix)
	tb.Cleanup(func() { StopDaemons(root) })
	e := &Env{Root: root, Prefix: prefix, SFTPGroup: prefix + "sftp", MailSpool: filepath.Join(root, "mail")}
	_, e.DBPort = port(tb)
	e.HTTPAddr, _ = port(tb)
	e.SSHAddr, _ = port(tb)
	e.DBSocket, e.dbDone = mariaDB(tb, root, e.DBPort)
	return e
}

// StartSSHD starts sshd for the Env's SFTP group with the node's Match block
// (root/ssh/sftp.conf, written by the hosting node).
func (e *Env) StartSSHD(tb testing.TB) {
	tb.Helper()
	_, p, _ := net.SplitHostPort(e.SSHAddr)
	n, _ := strconv.Atoi(p)
	SSHD(tb, e.Root, n, e.SFTPGroup, filepath.Join(e.Root, "ssh", "sftp.conf"))
}

// StopDaemons stops nginx and the PHP-FPM masters whose pid files are under
// root (a hosting node keeps them running across agent restarts).
func StopDaemons(root string) {
	pids, _ := filepath.Glob(filepath.Join(root, "fpm", "*", "php-fpm.pid"))
	pids = append(pids, filepath.Join(root, "nginx", "nginx.pid"))
	for _, f := range pids {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 1 {
			continue
		}
		_ = syscall.Kill(pid, syscall.SIGQUIT)
		for i := 0; i < 250 && syscall.Kill(pid, 0) == nil; i++ {
			time.Sleep(20 * time.Millisecond)
		}
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}
