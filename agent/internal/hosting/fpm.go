package hosting

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"text/template"
	"time"
)

var fpmBinRE = regexp.MustCompile(`php-fpm([5-9]\.[0-9]{1,2})$`)

// PHPVersions lists the PHP-FPM versions installed (binaries matching glob,
// php-fpmX.Y), sorted, with their binaries.
func PHPVersions(glob string) (versions []string, bins map[string]string) {
	bins = map[string]string{}
	m, _ := filepath.Glob(glob)
	for _, p := range m {
		if sm := fpmBinRE.FindStringSubmatch(p); sm != nil {
			if st, err := os.Stat(p); err == nil && st.Mode()&0o111 != 0 {
				bins[sm[1]] = p
				versions = append(versions, sm[1])
			}
		}
	}
	slices.Sort(versions)
	return slices.Compact(versions), bins
}

var fpmGlobalTemplate = template.Must(template.New("php-fpm.conf").Parse(`; rendered by hostplane-agent (hosting role)
[global]
pid = {{.Dir}}/php-fpm.pid
error_log = {{.Dir}}/error.log
daemonize = yes
process_control_timeout = 10s
include = {{.Dir}}/pool.d/*.conf
`))

// PoolParams fill a pool's configuration; (PoolParams).check refuses any
// value that could end a line, start a comment or a section, or expand a
// variable in php-fpm's ini syntax.
type PoolParams struct {
	User, Group, WebGroup string
	Socket                string
	Site                  string // Layout.Site(user)
	// DBSocket is the node's MariaDB socket (Config.MariaDBSocket): PHP's
	// mysqli and PDO connect to it for the host "localhost", the db_host
	// customers are given; PHP's own default is Debian's path, so without
	// it a node whose MariaDB listens elsewhere gives every site a 2002.
	// Empty: PHP's default (no setting rendered).
	DBSocket               string
	MaxChildren            int
	MemoryMiB              int
	MaxExecutionSeconds    int
	UploadMiB              int
	RequestTerminateSecond int
}

// DisabledFunctions are the PHP functions no pool may call (the pool's
// php_admin_value[disable_functions], added to php.ini's own list):
//   - running programs: exec, passthru, shell_exec (and the backtick
//     operator), system, proc_open, popen and the proc_* functions that
//     work on what proc_open made; pcntl_* (fork, exec, signals, alarms;
//     not loaded in PHP-FPM on Debian, listed for builds that load it);
//   - signalling and leaving the worker's process group: posix_kill,
//     posix_setsid, posix_setpgid;
//   - putenv (LD_PRELOAD for the shell mail() starts) and dl (loading a
//     shared object);
//   - the account database: posix_getpwuid, posix_getpwnam, posix_getgrgid,
//     posix_getgrnam read /etc/passwd and /etc/group through the C library,
//     which open_basedir does not cover: a loop over uids lists every
//     account's name and home;
//   - OPcache's API: every pool of a master shares its cache, so
//     opcache_get_status lists every site's script paths, opcache_reset
//     empties everyone's cache, opcache_is_script_cached probes another
//     site's paths;
//   - System V IPC (shm_attach, sem_get, msg_get_queue, shmop_open, which
//     every other call of those extensions needs): the objects are the
//     node's, not the account's (0666 unless the caller says otherwise, so
//     another account attaches by key), outlive the worker and the deleted
//     account, and fill the node's IPC limits.
//
// mail() stays: it runs the node's sendmail_path (not the customer's) and
// its fifth parameter is escaped by PHP. Customers who need to run programs
// will be a per-plan option (not yet).
var DisabledFunctions = []string{
	"exec", "passthru", "shell_exec", "system", "proc_open", "popen",
	"proc_close", "proc_get_status", "proc_nice", "proc_terminate",
	"pcntl_exec", "pcntl_fork", "pcntl_rfork", "pcntl_unshare", "pcntl_signal", "pcntl_signal_dispatch",
	"pcntl_alarm", "pcntl_async_signals", "pcntl_setpriority", "pcntl_wait", "pcntl_waitpid",
	"posix_kill", "posix_setsid", "posix_setpgid", "putenv", "dl",
	"posix_getpwuid", "posix_getpwnam", "posix_getgrgid", "posix_getgrnam",
	"opcache_get_status", "opcache_get_configuration", "opcache_reset", "opcache_invalidate",
	"opcache_compile_file", "opcache_is_script_cached",
	"shm_attach", "sem_get", "msg_get_queue", "shmop_open",
}

// PoolOpenFiles is every pool worker's open file limit (rlimit_files).
const PoolOpenFiles = 1024

// PoolMaxRequests: a worker is replaced after this many requests (a slow
// leak in a site's code does not grow for ever).
const PoolMaxRequests = 500

var poolTemplate = template.Must(template.New("pool.conf").Parse(`; rendered by hostplane-agent (hosting role); replaced on every agent start
[{{.P.User}}]
user = {{.P.User}}
group = {{.P.Group}}
listen = {{.P.Socket}}
listen.owner = {{.P.User}}
listen.group = {{.P.WebGroup}}
listen.mode = 0660
pm = ondemand
pm.max_children = {{.P.MaxChildren}}
pm.process_idle_timeout = 10s
pm.max_requests = {{.MaxRequests}}
request_terminate_timeout = {{.P.RequestTerminateSecond}}s
rlimit_files = {{.OpenFiles}}
rlimit_core = 0
chdir = /
security.limit_extensions = .php
php_admin_value[open_basedir] = {{.P.Site}}/public:{{.P.Site}}/private:{{.P.Site}}/tmp
php_admin_value[upload_tmp_dir] = {{.P.Site}}/tmp
php_admin_value[session.save_path] = {{.P.Site}}/tmp
php_admin_value[sys_temp_dir] = {{.P.Site}}/tmp
php_admin_value[disable_functions] = {{.Disabled}}
php_admin_value[memory_limit] = {{.P.MemoryMiB}}M
php_admin_value[max_execution_time] = {{.P.MaxExecutionSeconds}}
php_admin_value[upload_max_filesize] = {{.P.UploadMiB}}M
php_admin_value[post_max_size] = {{.P.UploadMiB}}M
{{if .P.DBSocket}}php_admin_value[mysqli.default_socket] = {{.P.DBSocket}}
php_admin_value[pdo_mysql.default_socket] = {{.P.DBSocket}}
{{end}}php_admin_flag[opcache.validate_permission] = on
php_admin_flag[allow_url_include] = off
php_admin_flag[expose_php] = off
`))

// poolWordRE and poolPathRE are what a pool file's names and paths may be:
// no space, newline, ';' (comment), '[' (section), '=', quote or '$'
// (php-fpm expands ${VAR}).
var (
	poolWordRE = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)
	poolPathRE = regexp.MustCompile(`^(/[A-Za-z0-9._-]+)+$`)
)

// checkPoolPath refuses a path a pool file may not hold.
func checkPoolPath(s string) error {
	if !poolPathRE.MatchString(s) || slices.Contains(strings.Split(s, "/"), "..") || slices.Contains(strings.Split(s, "/"), ".") {
		return fmt.Errorf("pool: %q must be a clean absolute path of A-Z, a-z, 0-9, '.', '_' and '-'", s)
	}
	return nil
}

func (p PoolParams) check() error {
	for _, w := range []string{p.User, p.Group, p.WebGroup} {
		if !poolWordRE.MatchString(w) {
			return fmt.Errorf("pool: %q is not a plain user or group name", w)
		}
	}
	for _, s := range []string{p.Socket, p.Site} {
		if err := checkPoolPath(s); err != nil {
			return err
		}
	}
	if p.DBSocket != "" {
		if err := checkPoolPath(p.DBSocket); err != nil {
			return err
		}
	}
	for _, n := range []int{p.MaxChildren, p.MemoryMiB, p.MaxExecutionSeconds, p.UploadMiB, p.RequestTerminateSecond} {
		if n < 1 || n > 1<<20 {
			return fmt.Errorf("pool: limit %d out of range", n)
		}
	}
	return nil
}

// RenderPool is the pool file of p, or an error naming the value that may
// not go into it.
func RenderPool(p PoolParams) ([]byte, error) {
	if err := p.check(); err != nil {
		return nil, err
	}
	var b strings.Builder
	err := poolTemplate.Execute(&b, struct {
		P                      PoolParams
		Disabled               string
		OpenFiles, MaxRequests int
	}{p, strings.Join(DisabledFunctions, ","), PoolOpenFiles, PoolMaxRequests})
	return []byte(b.String()), err
}

// FPM runs one php-fpm master per PHP version, each with the pools of that
// version (fpm/<version>/pool.d/<user>.conf). A master runs while it has a pool.
type FPM struct {
	L    Layout
	Glob string // where the php-fpmX.Y binaries are (/usr/sbin/php-fpm*)

	// mu serializes the changes of pool.d and the masters: the accounts'
	// actions run concurrently (one at a time per account), and two
	// unserialized applies start a second master on the same sockets, or
	// check (php-fpm -t) a pool.d another one just emptied.
	mu sync.Mutex
	// afterSignal, if set, runs in apply between a reload's USR2 and its
	// wait (tests: logrotate's rename at that moment).
	afterSignal func()
}

func (f *FPM) poolFile(version, user string) string {
	return filepath.Join(f.L.FPMDir(version), "pool.d", user+".conf")
}

// PoolVersion is the version whose pool.d holds user's pool ("" if none).
func (f *FPM) PoolVersion(user string) string {
	m, _ := filepath.Glob(filepath.Join(f.L.Root, "fpm", "*", "pool.d", user+".conf"))
	if len(m) == 0 {
		return ""
	}
	return filepath.Base(filepath.Dir(filepath.Dir(m[0])))
}

// PutPool writes user's pool into version's master (removing it from any
// other version) and applies both.
func (f *FPM) PutPool(ctx context.Context, version string, p PoolParams) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	conf, err := RenderPool(p)
	if err != nil {
		return err
	}
	dir := filepath.Join(f.L.FPMDir(version), "pool.d")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	// The master's error log (every pool's messages) and the pools'
	// settings: root only, as a site's PHP runs commands as its account.
	if err := os.Chmod(f.L.FPMDir(version), 0o700); err != nil {
		return err
	}
	// A pool moving between versions leaves the old master first: both
	// masters would bind the same socket path, and the old one's reload would
	// unlink the new one's socket.
	old := f.PoolVersion(p.User)
	var oldConf []byte
	if old != "" && old != version {
		oldConf, _ = os.ReadFile(f.poolFile(old, p.User))
		if err := os.Remove(f.poolFile(old, p.User)); err != nil {
			return err
		}
		if err := f.apply(ctx, old); err != nil {
			return err
		}
	}
	if err := WriteFileAtomic(f.poolFile(version, p.User), conf, 0o644); err != nil {
		return err
	}
	if err := f.apply(ctx, version); err != nil {
		_ = os.Remove(f.poolFile(version, p.User))
		_ = f.apply(ctx, version)
		if oldConf != nil {
			_ = WriteFileAtomic(f.poolFile(old, p.User), oldConf, 0o644)
			_ = f.apply(ctx, old)
		}
		return err
	}
	return nil
}

// RemovePool removes user's pool from whichever master has it.
func (f *FPM) RemovePool(ctx context.Context, user string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	v := f.PoolVersion(user)
	if v == "" {
		return nil
	}
	if err := os.Remove(f.poolFile(v, user)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return f.apply(ctx, v)
}

func (f *FPM) pidFile(version string) string {
	return filepath.Join(f.L.FPMDir(version), "php-fpm.pid")
}

// apply makes version's master match its pool.d: started, reloaded (USR2,
// after php-fpm -t) or stopped when no pool is left; it waits for every pool's
// socket to appear.
func (f *FPM) apply(ctx context.Context, version string) error {
	_, bins := PHPVersions(f.Glob)
	bin, ok := bins[version]
	dir := f.L.FPMDir(version)
	pools, _ := filepath.Glob(filepath.Join(dir, "pool.d", "*.conf"))
	pid := pidAlive(f.pidFile(version))
	if len(pools) == 0 {
		return stopPID(pid, 10*time.Second)
	}
	if !ok {
		return fmt.Errorf("php-fpm %s is not installed", version)
	}
	var b strings.Builder
	if err := fpmGlobalTemplate.Execute(&b, struct{ Dir string }{dir}); err != nil {
		return err
	}
	conf := filepath.Join(dir, "php-fpm.conf")
	if err := WriteFileAtomic(conf, []byte(b.String()), 0o644); err != nil {
		return err
	}
	if out, err := exec.CommandContext(ctx, bin, "-t", "-y", conf).CombinedOutput(); err != nil {
		return fmt.Errorf("php-fpm%s -t refused the pools: %v: %s", version, err, strings.TrimSpace(string(out)))
	}
	// A reload is done when the re-executed master logs that it is ready:
	// until then the old master serves the old pools (settings, and the
	// socket of a removed pool), and the sockets that stay are there all
	// along, so their presence says nothing.
	logPath := filepath.Join(dir, "error.log")
	reloaded := func() bool { return true }
	if pid > 0 {
		// The log as it is before the signal, open: logrotate may rename it
		// meanwhile (create, then reopen-logs); the new master's "ready" is
		// then in this file after off, or in the new one from its start.
		var off int64
		before, _ := os.Open(logPath)
		if before != nil {
			defer before.Close()
			if st, err := before.Stat(); err == nil {
				off = st.Size()
			}
		}
		ready := func(fh *os.File, from int64) bool {
			b, _ := io.ReadAll(io.NewSectionReader(fh, from, 1<<20))
			return strings.Contains(string(b), "ready to handle connections")
		}
		reloaded = func() bool {
			if before != nil && ready(before, off) {
				return true
			}
			fh, err := os.Open(logPath)
			if err != nil {
				return false
			}
			defer fh.Close()
			if before == nil {
				return ready(fh, off)
			}
			a, errA := before.Stat()
			b, errB := fh.Stat()
			return errA == nil && errB == nil && !os.SameFile(a, b) && ready(fh, 0)
		}
		// USR2 re-executes the master in place; it keeps the sockets of the
		// pools that stay.
		if err := syscall.Kill(pid, syscall.SIGUSR2); err != nil {
			return err
		}
		if f.afterSignal != nil {
			f.afterSignal()
		}
	} else {
		if out, err := exec.CommandContext(ctx, bin, "-y", conf).CombinedOutput(); err != nil {
			return fmt.Errorf("start php-fpm%s: %v: %s", version, err, strings.TrimSpace(string(out)))
		}
	}
	// Every pool's socket must be there (a reload takes ~30 ms).
	var socks []string
	for _, p := range pools {
		user := strings.TrimSuffix(filepath.Base(p), ".conf")
		socks = append(socks, f.L.Socket(user))
	}
	// A reload waits for busy workers up to process_control_timeout (10 s).
	deadline := time.Now().Add(20 * time.Second)
	for {
		missing := ""
		for _, s := range socks {
			if _, err := os.Stat(s); err != nil {
				missing = s
				break
			}
		}
		ready := reloaded()
		if missing == "" && ready && pidAlive(f.pidFile(version)) > 0 {
			return nil
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logPath)
			if !ready {
				return fmt.Errorf("php-fpm%s: the reload did not finish: %s", version, tail(string(log), 400))
			}
			return fmt.Errorf("php-fpm%s: socket %s did not appear: %s", version, missing, tail(string(log), 400))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// RefreshPools rewrites the pool files that exist with what pools renders
// for them today (after an agent upgrade: new limits or isolation settings
// reach the sites made before) and reloads each master whose pools changed.
// It never adds or removes a pool. If a master refuses its new pools (php-fpm
// -t), that version's previous files are put back and it is reloaded on them;
// the error names the version.
func (f *FPM) RefreshPools(ctx context.Context, pools map[string]PoolParams) (changed int, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	type prev struct {
		path string
		old  []byte
	}
	byVersion := map[string][]prev{}
	for user, p := range pools {
		v := f.PoolVersion(user)
		if v == "" {
			continue
		}
		path := f.poolFile(v, user)
		old, rerr := os.ReadFile(path)
		if rerr != nil {
			continue
		}
		conf, rerr := RenderPool(p)
		if rerr != nil {
			err = errors.Join(err, fmt.Errorf("pool %s: %w", user, rerr))
			continue
		}
		if string(conf) == string(old) {
			continue
		}
		if werr := WriteFileAtomic(path, conf, 0o644); werr != nil {
			err = errors.Join(err, werr)
			continue
		}
		byVersion[v] = append(byVersion[v], prev{path, old})
		changed++
	}
	for v, ps := range byVersion {
		if pidAlive(f.pidFile(v)) <= 0 {
			continue // EnsureRunning starts it on the new files
		}
		if aerr := f.apply(ctx, v); aerr != nil {
			for _, p := range ps {
				_ = WriteFileAtomic(p.path, p.old, 0o644)
			}
			_ = f.apply(ctx, v)
			err = errors.Join(err, fmt.Errorf("php-fpm %s kept its previous pools: %w", v, aerr))
		}
	}
	return changed, err
}

// EnsureRunning starts the master of every version that has pools but no
// running master (after a reboot: the masters outlive agent restarts, not
// the host's).
func (f *FPM) EnsureRunning(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	dirs, _ := filepath.Glob(filepath.Join(f.L.Root, "fpm", "*"))
	var errs []error
	for _, d := range dirs {
		v := filepath.Base(d)
		pools, _ := filepath.Glob(filepath.Join(d, "pool.d", "*.conf"))
		if len(pools) == 0 || pidAlive(f.pidFile(v)) > 0 {
			continue
		}
		if err := f.apply(ctx, v); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// StopAll stops every master (tests, and a node leaving the hosting role).
func (f *FPM) StopAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, _ := filepath.Glob(filepath.Join(f.L.Root, "fpm", "*", "php-fpm.pid"))
	for _, p := range m {
		_ = stopPID(pidAlive(p), 10*time.Second)
	}
}

func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
