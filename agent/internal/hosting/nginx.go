package hosting

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/template"
	"time"

	"github.com/hostplane/hostplane/internal/atomicfile"
)

// HostRegex is the rule nginx applies to $host before it becomes part of a
// path: the shape of validate.Domain's ASCII form (lower-case labels of a-z,
// 0-9 and '-', at least two; pkg/validate's fuzz test checks they agree). nginx lower-cases $host and strips a port and a trailing
// dot; anything else that does not match gets 421.
const HostRegex = `^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$`

// NginxParams fill the nginx template.
type NginxParams struct {
	Root      string // Layout.Root
	User      string // worker user (www-data)
	Listen    string // HTTP listen address (0.0.0.0:80)
	ConfDir   string // where mime.types and fastcgi_params are (/etc/nginx)
	Workers   string // worker_processes (auto)
	HostRegex string
}

// NginxTemplate renders nginx.conf. Paths are quoted by construction: Root,
// User, Listen and ConfDir are checked by (NginxParams).check.
var NginxTemplate = template.Must(template.New("nginx.conf").Parse(`# rendered by hostplane-agent (hosting role); do not edit: changes are replaced
# Hook: top-level parts (load_module of the TLS part's certificate cache).
include {{.Root}}/nginx/main.d/*.conf;
user {{.User}};
worker_processes {{.Workers}};
pid {{.Root}}/nginx/nginx.pid;
error_log {{.Root}}/nginx/logs/error.log notice;
events { worker_connections 4096; }
http {
  include {{.ConfDir}}/mime.types;
  default_type application/octet-stream;
  sendfile on;
  server_tokens off;
  access_log {{.Root}}/nginx/logs/access.log;
  client_body_temp_path {{.Root}}/nginx/tmp/body;
  fastcgi_temp_path {{.Root}}/nginx/tmp/fastcgi;
  proxy_temp_path {{.Root}}/nginx/tmp/proxy;
  scgi_temp_path {{.Root}}/nginx/tmp/scgi;
  uwsgi_temp_path {{.Root}}/nginx/tmp/uwsgi;
  # $host is client input: only a validated DNS name becomes part of a path.
  map $host $hp_site {
    "~{{.HostRegex}}" $host;
    default "";
  }
  # The account a host name's symlink points at (hosts/<host> → ../sites/<user>),
  # read where PHP is served: its limits are in location @hp_php_<user> (site.conf).
  map $realpath_root $hp_acct {
    "~/sites/(?<hp_a>[a-z][a-z0-9]*)/public$" $hp_a;
    default "";
  }
  # Hook: the TLS server block(s) (per-SNI certificates) and other http-level parts.
  include {{.Root}}/nginx/tls.d/*.conf;
  server {
    listen {{.Listen}} default_server;
    server_name _;
    # Hook: locations served before the site (ACME HTTP-01).
    include {{.Root}}/nginx/http.d/*.conf;
    include {{.Root}}/nginx/site.conf;
  }
}
`))

// SiteTemplate renders site.conf, the per-request site logic: everything is
// looked up from hosts/$hp_site, so attaching a host name needs no reload.
// The limits of each account's plan are in its own named location
// (@hp_php_<user>), chosen by the account the host name's symlink points at
// ($hp_acct, from $realpath_root): a PHP request is checked against its own
// account's limits whatever host name reached it (primary domain, custom
// domain, HTTP or TLS). Adding or removing an account reloads nginx
// (SetSites); attaching a host name does not.
var SiteTemplate = template.Must(template.New("site.conf").Parse(`# rendered by hostplane-agent (hosting role): the site of $hp_site
if ($hp_site = "") { return 421; }
set $hp_home {{.Root}}/hosts/$hp_site;
root $hp_home/public;
disable_symlinks if_not_owner from=$document_root;
index index.php index.html;
error_page 503 /.hostplane-suspended.html;
location = /.hostplane-suspended.html { internal; alias {{.Root}}/nginx/pages/suspended.html; }
location / {
  if (-f $hp_home/suspended) { return 503; }
  # A file is served, a directory runs its index; any other path goes to the
  # site's front controller, its /index.php (REQUEST_URI stays the path asked
  # for), through the PHP location below: a 404 if the site has none.
  try_files $uri $uri/ /index.php$is_args$args;
}
# Hidden files and directories (.git, .env, .user.ini, .htaccess, .htpasswd)
# are neither served, run nor handed to the front controller; /.well-known/
# (RFC 8615: security.txt, password change) is a path like any other. Before
# the PHP location: /.git/x.php is refused too.
location ~ "/\.(?!well-known(/|$))" { return 404; }
location ~ \.php$ {
  # A declared body larger than every plan on the node is refused here; the
  # account's own limit is checked in its location.
  client_max_body_size {{.MaxUploadMiB}}m;
  error_page 503 /.hostplane-suspended.html;
  if (-f $hp_home/suspended) { return 503; }
  if (!-f $request_filename) { return 404; }
  # The account's location (a body is not read before it).
  error_page 418 = @hp_php_$hp_acct;
  return 418;
}
# Any other name PHP source goes by is a 404, never served as text: the
# .php of another case (config.PHP, .Php: a case-insensitive file system's
# habit; PHP-FPM runs .php only, security.limit_extensions), PHP's other
# extensions (.php5, .phtml, .phar, .pht, .phps) and the editor and backup
# copies of a script (config.php~, .php.bak, .php.save, .php.orig) whose
# source holds the same passwords. After the PHP location, which takes
# .php itself first.
location ~* "\.ph(p[^/]*|tml|ar|t)$" { return 404; }
location @hp_php_ { return 404; }
{{- range .Sites}}
location @hp_php_{{.User}} {
  client_max_body_size {{.UploadMiB}}m;
  if ($content_length ~ "{{.TooLarge}}") { return 413; }
  fastcgi_read_timeout {{.ReadTimeoutSeconds}}s;
  try_files $uri =404;
  include {{$.ConfDir}}/fastcgi_params;
  fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
  fastcgi_param HTTP_PROXY "";
  fastcgi_pass unix:{{$.Root}}/sites/{{.User}}/run/php-fpm.sock;
}
{{- end}}
`))

// SiteLimits are the nginx limits of one account's PHP requests (from its
// plan; rendered as integers).
type SiteLimits struct {
	User string
	// UploadMiB is the largest request body (client_max_body_size): the
	// plan's upload_mib, PHP's post_max_size.
	UploadMiB int
	// ReadTimeoutSeconds is how long nginx waits for PHP's answer
	// (fastcgi_read_timeout): longer than the pool's
	// request_terminate_timeout, so PHP-FPM ends a long request, not nginx.
	ReadTimeoutSeconds int
}

var siteUserRE = regexp.MustCompile(`^[a-z][a-z0-9]{0,31}$`)

func (s SiteLimits) check() error {
	switch {
	case !siteUserRE.MatchString(s.User):
		return fmt.Errorf("site %q is not a plain account name", s.User)
	case s.UploadMiB < 1 || s.UploadMiB > MaxUploadMiB:
		return fmt.Errorf("site %s: upload limit %d MiB out of range 1-%d", s.User, s.UploadMiB, MaxUploadMiB)
	case s.ReadTimeoutSeconds < 1 || s.ReadTimeoutSeconds > 1<<20:
		return fmt.Errorf("site %s: read timeout %d s out of range", s.User, s.ReadTimeoutSeconds)
	}
	return nil
}

// MaxUploadMiB is the largest upload limit a site may have (validate's
// upload_mib range).
const MaxUploadMiB = 4096

// GreaterThanRegex is a regular expression matching exactly the decimal
// numbers (leading zeros allowed) greater than n >= 0.
func GreaterThanRegex(n int64) string {
	s := strconv.FormatInt(n, 10)
	k := len(s)
	alts := []string{fmt.Sprintf("[1-9][0-9]{%d,}", k)}
	for i := 0; i < k; i++ {
		if s[i] == '9' {
			continue
		}
		alt := s[:i] + fmt.Sprintf("[%c-9]", s[i]+1)
		if rest := k - i - 1; rest > 0 {
			alt += fmt.Sprintf("[0-9]{%d}", rest)
		}
		alts = append(alts, alt)
	}
	return "^0*(" + strings.Join(alts, "|") + ")$"
}

const suspendedPage = `<!doctype html><html><head><meta charset="utf-8"><title>Account suspended</title></head>
<body><h1>This account is suspended</h1><p>Please contact the site's owner or the hosting provider.</p></body></html>
`

var (
	safePathRE   = regexp.MustCompile(`^/[A-Za-z0-9/._-]*$`)
	safeWordRE   = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)
	safeListenRE = regexp.MustCompile(`^(\[[0-9a-fA-F:.]+\]|[0-9.]+|\*)?:?[0-9]{1,5}$`)
)

func (p NginxParams) check() error {
	switch {
	case !safePathRE.MatchString(p.Root) || strings.Contains(p.Root, ".."):
		return fmt.Errorf("hosting root %q must be an absolute path of A-Z, a-z, 0-9, '/', '.', '_' and '-'", p.Root)
	case !safePathRE.MatchString(p.ConfDir):
		return fmt.Errorf("nginx conf dir %q must be an absolute path of A-Z, a-z, 0-9, '/', '.', '_' and '-'", p.ConfDir)
	case !safeWordRE.MatchString(p.User):
		return fmt.Errorf("nginx user %q is not a plain name", p.User)
	case !safeListenRE.MatchString(p.Listen):
		return fmt.Errorf("http listen address %q must be host:port", p.Listen)
	case p.Workers != "auto" && !regexp.MustCompile(`^[1-9][0-9]?$`).MatchString(p.Workers):
		return fmt.Errorf("nginx workers %q must be auto or a number", p.Workers)
	}
	return nil
}

// Nginx runs the node's nginx from Layout.NginxConf.
type Nginx struct {
	L      Layout
	Bin    string // nginx
	Params NginxParams
	// Sites are the accounts' limits site.conf is rendered with (SetSites).
	Sites []SiteLimits

	// mu serializes renders and applies: the accounts' actions run
	// concurrently.
	mu sync.Mutex
	// started: the running master was started by this Nginx (apply found
	// none running), so it read every include as it was then.
	started bool
	// afterSignal, if set, runs in Reload between the signal and the wait
	// (tests: an event at that moment, not after a sleep).
	afterSignal func(master int, old []int)
}

// Started tells whether the running nginx was started by this Nginx's
// Ensure or Apply (none was running) rather than found running: it read
// every include (tls.d, http.d, main.d) at that start, so includes written
// before it need no reload.
func (n *Nginx) Started() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.started && n.PID() > 0
}

func (n *Nginx) cmd(ctx context.Context, conf string, args ...string) *exec.Cmd {
	a := append([]string{"-e", filepath.Join(n.L.NginxLogs(), "error.log"), "-c", conf, "-p", n.L.NginxDir() + "/"}, args...)
	return exec.CommandContext(ctx, n.Bin, a...)
}

// render returns nginx.conf and site.conf for the parameters.
func (n *Nginx) render() (conf, site []byte, err error) {
	p := n.Params
	if p.HostRegex == "" {
		p.HostRegex = HostRegex
	}
	if p.Workers == "" {
		p.Workers = "auto"
	}
	if err := p.check(); err != nil {
		return nil, nil, err
	}
	type siteView struct {
		SiteLimits
		TooLarge string
	}
	v := struct {
		NginxParams
		MaxUploadMiB int
		Sites        []siteView
	}{NginxParams: p, MaxUploadMiB: 1}
	sites := slices.Clone(n.Sites)
	slices.SortFunc(sites, func(a, b SiteLimits) int { return strings.Compare(a.User, b.User) })
	for i, s := range sites {
		if err := s.check(); err != nil {
			return nil, nil, err
		}
		if i > 0 && sites[i-1].User == s.User {
			return nil, nil, fmt.Errorf("site %s given twice", s.User)
		}
		v.MaxUploadMiB = max(v.MaxUploadMiB, s.UploadMiB)
		v.Sites = append(v.Sites, siteView{s, GreaterThanRegex(int64(s.UploadMiB) << 20)})
	}
	var a, b bytes.Buffer
	if err := NginxTemplate.Execute(&a, p); err != nil {
		return nil, nil, err
	}
	if err := SiteTemplate.Execute(&b, v); err != nil {
		return nil, nil, err
	}
	return a.Bytes(), b.Bytes(), nil
}

// SetSites renders site.conf with the accounts' limits and applies it (nginx
// -t, then a reload) when it changed; on an error the previous sites stay.
func (n *Nginx) SetSites(ctx context.Context, sites []SiteLimits) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	old := n.Sites
	n.Sites = sites
	_, site, err := n.render()
	if err == nil {
		err = n.apply(ctx, nil, site)
	}
	if err != nil {
		n.Sites = old
	}
	return err
}

// Ensure makes the layout's directories, renders the configuration and starts
// nginx, or reloads it when the configuration changed. A changed configuration
// is checked with nginx -t first; if the reload fails the previous files are
// put back and nginx is reloaded on them.
func (n *Nginx) Ensure(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	conf, site, err := n.render()
	if err != nil {
		return err
	}
	for _, d := range []string{n.L.Root, n.L.NginxDir(), n.L.TLSDir(), n.L.HTTPDir(), n.L.MainDir(), n.L.HostsDir(),
		filepath.Join(n.L.Root, "sites"), filepath.Join(n.L.Root, "fpm"), filepath.Join(n.L.NginxDir(), "pages"),
		filepath.Join(n.L.NginxDir(), "tmp")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
		if err := os.Chmod(d, 0o755); err != nil {
			return err
		}
	}
	for _, d := range []string{filepath.Join(n.L.Root, "accounts"), n.L.CertsDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	// The logs hold every site's request lines (query strings) and PHP
	// messages, and a site's PHP runs commands as its account: root and
	// the workers' group, which may only pass through (0710), so that the
	// workers can reopen their logs by name on USR1 (ReopenLogs; the master
	// hands the files to the worker user then). No account is in it.
	gid, err := workerGroup(n.Params.User)
	if err != nil {
		return err
	}
	logs := n.L.NginxLogs()
	if err := os.MkdirAll(logs, 0o710); err != nil {
		return err
	}
	if err := os.Chown(logs, 0, gid); err != nil {
		return err
	}
	if err := os.Chmod(logs, 0o710); err != nil {
		return err
	}
	if err := WriteFileAtomic(filepath.Join(n.L.NginxDir(), "pages", "suspended.html"), []byte(suspendedPage), 0o644); err != nil {
		return err
	}
	return n.apply(ctx, conf, site)
}

// Apply installs a new nginx.conf and site.conf (either may be nil: kept) the
// safe way: nginx -t on the candidates, atomic renames, then a start or a
// reload; on a failed reload the previous files come back.
func (n *Nginx) Apply(ctx context.Context, conf, site []byte) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.apply(ctx, conf, site)
}

func (n *Nginx) apply(ctx context.Context, conf, site []byte) error {
	oldConf, errC := os.ReadFile(n.L.NginxConf())
	oldSite, errS := os.ReadFile(n.L.SiteConf())
	if conf == nil {
		conf = oldConf
	}
	if site == nil {
		site = oldSite
	}
	running := n.PID() > 0
	if errC == nil && errS == nil && bytes.Equal(oldConf, conf) && bytes.Equal(oldSite, site) && running {
		return nil
	}
	// The hooks (tls.d: the TLS server block) include the live site.conf:
	// on the first start there is none yet and nothing is served, so it is
	// written before the check.
	if errors.Is(errS, os.ErrNotExist) {
		if err := WriteFileAtomic(n.L.SiteConf(), site, 0o644); err != nil {
			return err
		}
	}
	// The candidate nginx.conf includes the candidate site.conf.
	candSite := n.L.SiteConf() + ".new"
	candConf := n.L.NginxConf() + ".new"
	if err := WriteFileAtomic(candSite, site, 0o644); err != nil {
		return err
	}
	defer os.Remove(candSite)
	cand := bytes.ReplaceAll(conf, []byte("include "+n.L.SiteConf()+";"), []byte("include "+candSite+";"))
	if err := WriteFileAtomic(candConf, cand, 0o644); err != nil {
		return err
	}
	defer os.Remove(candConf)
	if out, err := n.cmd(ctx, candConf, "-t", "-q").CombinedOutput(); err != nil {
		return fmt.Errorf("nginx -t refused the new configuration: %v: %s", err, strings.TrimSpace(string(out)))
	}
	if err := WriteFileAtomic(n.L.SiteConf(), site, 0o644); err != nil {
		return err
	}
	if err := WriteFileAtomic(n.L.NginxConf(), conf, 0o644); err != nil {
		return err
	}
	if !running {
		if err := n.start(ctx); err != nil {
			return err
		}
		n.started = true
		return nil
	}
	if err := n.Reload(ctx); err != nil {
		if errC == nil && errS == nil {
			_ = WriteFileAtomic(n.L.SiteConf(), oldSite, 0o644)
			_ = WriteFileAtomic(n.L.NginxConf(), oldConf, 0o644)
			_ = n.Reload(ctx)
		}
		return fmt.Errorf("nginx reload failed, previous configuration restored: %w", err)
	}
	return nil
}

func (n *Nginx) start(ctx context.Context) error {
	if out, err := n.cmd(ctx, n.L.NginxConf()).CombinedOutput(); err != nil {
		return fmt.Errorf("start nginx: %v: %s", err, strings.TrimSpace(string(out)))
	}
	for range 100 {
		if n.PID() > 0 {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return errors.New("start nginx: no pid file after 1 s")
}

// Reload re-reads the configuration (nginx -s reload) and waits until the
// master has started the workers of the new configuration and every worker
// of the previous one has stopped accepting requests (it has exited or is
// "shutting down", finishing the requests it has): what the caller does
// next (attach a host name whose account's location the new configuration
// adds) is then served by the new one.
//
// It follows the reload itself, never the traffic: the master's notices in
// its error log after the signal (at notice level: the signal received,
// "reconfiguring", "start worker process N"; an old worker's "gracefully
// shutting down" and "exiting"), the master's children (new workers, old
// ones gone) and the old workers' titles. Request errors the workers log
// into the same file on a busy node are not progress. It fails at once
// when the master refuses the configuration (an [emerg], [alert] or [crit]
// of the master between its "reconfiguring" and its "start worker
// processes": it keeps the old workers), and when the reload has not moved
// for reloadIdle or not finished after reloadMax; the error says how far
// the reload got and carries the error log's tail. Anything else logged
// meanwhile does not fail it: a worker's crash ("worker process N exited
// on signal 9", an [alert] of the master) is answered by the master with a
// new worker of the configuration it runs, and a worker it starts before
// its "reconfiguring" serves the previous configuration: Reload waits for
// that one as for the others. Where the error log shows nothing of the
// master (unwritable), the master's children alone decide.
//
// A reload is slow on a loaded machine: with the TLS part's Lua the master
// re-runs its init_by_lua and each worker its set-up (0.4–2.1 s right after
// a start at a load of 35 on 2 cores, hosting62's repeated runs), and right
// after a start the first workers are still in theirs.
func (n *Nginx) Reload(ctx context.Context) error {
	master := n.PID()
	// A master that has not forked its workers yet has not yet blocked the
	// signals it handles in its loop: a HUP it takes then only sets a flag
	// its loop looks at after the next signal, so that reload would wait
	// for another one. Its first child shows it is in its loop.
	if master > 0 {
		for deadline := time.Now().Add(reloadIdle); len(children(master)) == 0 && time.Now().Before(deadline); {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(5 * time.Millisecond):
			}
		}
	}
	w := newReloadWatch(filepath.Join(n.L.NginxLogs(), "error.log"), master, workers(master))
	// nginx -s reload parses the configuration first and fails on an error,
	// where a bare HUP would leave the old workers running silently.
	if out, err := n.cmd(ctx, n.L.NginxConf(), "-s", "reload").CombinedOutput(); err != nil {
		return fmt.Errorf("nginx -s reload: %v: %s", err, strings.TrimSpace(string(out)))
	}
	if n.afterSignal != nil {
		n.afterSignal(master, slices.Clone(w.old))
	}
	start := time.Now()
	lastProgress, lastSteps, lastServing, lastKids := start, -1, -1, ""
	for i := 0; ; i++ {
		w.read()
		if w.refusal != "" {
			return fmt.Errorf("nginx reload: the master refused the configuration, %d workers of the previous one still serve: %s", w.oldServing(), quoteLog(w.refusal, 1024))
		}
		serving := w.oldServing()
		if w.done(serving) {
			return nil
		}
		now := time.Now()
		if w.steps != lastSteps || serving != lastServing {
			lastSteps, lastServing, lastProgress = w.steps, serving, now
		}
		if i%20 == 0 { // the master's children every 100 ms
			if k := fmt.Sprint(children(master)); k != lastKids {
				lastKids, lastProgress = k, now
			}
			if now.Sub(lastProgress) > reloadIdle || now.Sub(start) > reloadMax {
				tail, left := logTail(w.logf, 2048)
				return fmt.Errorf("nginx reload: %s; after %v (%v without progress); nginx's error log ends (%d lines about connections left out): %s",
					w.state(serving), now.Sub(start).Round(100*time.Millisecond), now.Sub(lastProgress).Round(100*time.Millisecond), left, quoteLog(tail, 2048))
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// How long Reload waits for the old workers to stop accepting requests:
// reloadIdle without progress, reloadMax in all.
const (
	reloadIdle = 5 * time.Second
	reloadMax  = 30 * time.Second
)

// reloadWatch follows one reload in nginx's error log (from its size at the
// signal) and in /proc.
type reloadWatch struct {
	logf    string
	master  int
	old     []int // the master's workers before the signal
	cursor  int64 // how far the log has been read
	partial []byte
	buf     []byte // grown with the log's growth, at most 256 KiB
	seen    []byte // the log's last bytes before the cursor, as read

	sawMaster     bool // a line of the master since the signal: the log is written
	truncated     bool // the log was truncated since the signal: lines may be lost
	reconfiguring bool // the master's "reconfiguring"
	started       bool // its "start worker processes" after that
	steps         int  // lines of the reload seen (progress)
	oldCfg        []int
	newCfg        []int
	refusal       string
}

func newReloadWatch(logf string, master int, old []int) *reloadWatch {
	w := &reloadWatch{logf: logf, master: master, old: old, oldCfg: slices.Clone(old)}
	if f, err := os.Open(logf); err == nil {
		if st, err := f.Stat(); err == nil {
			w.cursor = st.Size()
			w.seen = make([]byte, min(64, w.cursor))
			k, _ := f.ReadAt(w.seen, w.cursor-int64(len(w.seen)))
			w.seen = w.seen[:k]
		}
		f.Close()
	}
	return w
}

// rewritten tells the bytes before the cursor are no longer those read: the
// log was truncated and has grown past the cursor again.
func (w *reloadWatch) rewritten(f *os.File) bool {
	b := make([]byte, len(w.seen))
	k, _ := f.ReadAt(b, w.cursor-int64(len(b)))
	return !bytes.Equal(b[:k], w.seen)
}

// nginxLogRE is a line of nginx's error log: level, pid, message.
var nginxLogRE = regexp.MustCompile(`^\S+ \S+ \[([a-z]+)\] ([1-9][0-9]*)#[0-9]+: (.*)$`)

var (
	startWorkerRE = regexp.MustCompile(`^start worker process ([0-9]+)$`)
	workerExitRE  = regexp.MustCompile(`^worker process [0-9]+ exited`)
)

// read takes the lines appended to the log since the last read. A log
// shorter than the cursor, or whose bytes before the cursor changed, was
// truncated or replaced (logrotate's create and reopen-logs: the master's
// lines until its reopen are in the rotated file) and maybe written again:
// it is read again from its start.
func (w *reloadWatch) read() {
	f, err := os.Open(w.logf)
	if err != nil {
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || st.Size() == w.cursor {
		return
	}
	if st.Size() < w.cursor || w.rewritten(f) {
		w.cursor, w.partial, w.seen, w.truncated = 0, nil, nil, true
	}
	if need := min(256<<10, st.Size()-w.cursor); int64(len(w.buf)) < need {
		w.buf = make([]byte, need)
	}
	buf := w.buf
	for range 16 { // at most 16 buffers a turn; the rest on the next
		k, _ := f.ReadAt(buf, w.cursor)
		if k == 0 {
			return
		}
		w.cursor += int64(k)
		w.seen = append(w.seen, buf[max(0, k-64):k]...) // only the last 64 bytes are kept
		w.seen = append(w.seen[:0:0], w.seen[max(0, len(w.seen)-64):]...)
		b := append(w.partial, buf[:k]...)
		for {
			i := bytes.IndexByte(b, '\n')
			if i < 0 {
				break
			}
			w.line(string(b[:i]))
			b = b[i+1:]
		}
		w.partial = append([]byte(nil), b...)
		if k < len(buf) {
			return
		}
	}
}

// line takes one line of the log: the master's, and the old workers'
// notices of their shutdown; lines of requests and of other processes are
// not the reload's.
func (w *reloadWatch) line(ln string) {
	m := nginxLogRE.FindStringSubmatch(ln)
	if m == nil {
		return
	}
	level, msg := m[1], m[3]
	pid, _ := strconv.Atoi(m[2])
	if pid != w.master {
		if slices.Contains(w.oldCfg, pid) && level == "notice" &&
			(msg == "gracefully shutting down" || msg == "exiting" || msg == "exit") {
			w.steps++
		}
		return
	}
	w.sawMaster = true
	switch {
	case level == "emerg" || level == "alert" || level == "crit":
		// Between "reconfiguring" and "start worker processes" the master
		// reads the new configuration (its signals blocked: no crash
		// report comes from that time); an error there refuses it.
		if w.reconfiguring && !w.started && !workerExitRE.MatchString(msg) && w.refusal == "" {
			w.refusal = ln
		}
	case level != "notice":
	case msg == "reconfiguring":
		w.reconfiguring, w.started = true, false
		w.steps++
	case msg == "start worker processes":
		w.started = w.started || w.reconfiguring
		w.steps++
	case strings.HasPrefix(msg, "start worker process "):
		sw := startWorkerRE.FindStringSubmatch(msg)
		if sw == nil {
			break
		}
		p, _ := strconv.Atoi(sw[1])
		switch {
		case w.reconfiguring:
			w.newCfg = append(w.newCfg, p)
		case !w.truncated:
			// A worker the master replaced (a crash) before taking the
			// reload: the previous configuration's. (In a truncated log
			// the "reconfiguring" before it may be lost: neither.)
			w.oldCfg = append(w.oldCfg, p)
		}
		w.steps++
	case strings.HasPrefix(msg, "signal ") || workerExitRE.MatchString(msg):
		w.steps++
	}
}

// serving tells a worker of the master that still accepts requests.
func (w *reloadWatch) serving(pid int) bool {
	t, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && isWorker(string(t)) && !strings.Contains(string(t), "shutting down") && ppid(pid) == w.master
}

// oldServing counts the workers of the previous configuration that still
// accept requests.
func (w *reloadWatch) oldServing() int {
	k := 0
	for _, pid := range w.oldCfg {
		if w.serving(pid) {
			k++
		}
	}
	return k
}

// done tells the reload finished, given how many workers of the previous
// configuration still accept requests: the master started the new workers
// and none of the previous configuration's serves. With nothing of the
// master in the log, or a log truncated meanwhile (the lines between
// logrotate's copy and its truncate are lost, "reconfiguring" may be among
// them), a worker the master did not have before the signal stands for the
// new ones.
func (w *reloadWatch) done(oldServing int) bool {
	if oldServing > 0 {
		return false
	}
	if w.sawMaster && !w.truncated {
		return w.started && slices.ContainsFunc(w.newCfg, w.serving)
	}
	if !slices.ContainsFunc(children(w.master), func(p int) bool { return !slices.Contains(w.oldCfg, p) && w.serving(p) }) {
		return false
	}
	// The master logs before it forks: read again, in case the new worker
	// came after the last read (then the log decides, on the next turn).
	w.read()
	return w.truncated || !w.sawMaster
}

// state says how far the reload got, for a timeout's error.
func (w *reloadWatch) state(serving int) string {
	var s string
	switch {
	case !w.sawMaster:
		s = fmt.Sprintf("the master (pid %d) has not taken the reload: no line of it in the error log since the signal", w.master)
	case !w.reconfiguring:
		s = fmt.Sprintf(`the master (pid %d) has not taken the reload: no "reconfiguring" of it in the error log since the signal`, w.master)
	case !w.started:
		s = fmt.Sprintf(`the master (pid %d) is still reading the new configuration ("reconfiguring", no "start worker processes" yet)`, w.master)
	case !slices.ContainsFunc(w.newCfg, w.serving):
		s = fmt.Sprintf("the master (pid %d) started workers %v for the new configuration, none of them serves", w.master, w.newCfg)
	default:
		s = fmt.Sprintf("the master (pid %d) started workers %v for the new configuration", w.master, w.newCfg)
	}
	return fmt.Sprintf("%s; %d workers of the previous configuration still accept requests", s, serving)
}

// connLineRE is a log line about a connection (nginx writes "*<n>" after
// the pid): a request's error, not the master's story.
var connLineRE = regexp.MustCompile(`^\S+ \S+ \[[a-z]+\] [0-9]+#[0-9]+: \*[0-9]+ `)

// logTail is the end of the log file (at most limit bytes, from a line's
// start) without its lines about connections, and how many of those it
// left out: on a busy node they crowd out the master's. It reads back
// from the end, 64 KiB at a time, at most 4 MiB.
func logTail(path string, limit int) (string, int) {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(unreadable: %v)", err), 0
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Sprintf("(unreadable: %v)", err), 0
	}
	var kept []string // newest first
	size, left := 0, 0
	end := st.Size()
	var rest []byte // the start of a line cut by the previous chunk
	for end > 0 && size < limit && st.Size()-end < 4<<20 {
		off := max(0, end-64<<10)
		b := make([]byte, end-off)
		k, _ := f.ReadAt(b, off)
		b = append(b[:k], rest...)
		end = off
		rest = nil
		if off > 0 {
			i := bytes.IndexByte(b, '\n')
			if i < 0 {
				rest = b
				continue
			}
			rest, b = b[:i], b[i+1:]
		}
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		for i := len(lines) - 1; i >= 0 && size < limit; i-- {
			if connLineRE.MatchString(lines[i]) {
				left++
				continue
			}
			kept = append(kept, lines[i])
			size += len(lines[i]) + 1
		}
	}
	slices.Reverse(kept)
	return strings.Join(kept, "\n"), left
}

// quoteLog escapes nginx's log text for an error message (it holds client
// input: request lines, host names) and caps it at limit bytes, keeping
// the end.
func quoteLog(s string, limit int) string {
	s = strings.TrimSpace(s)
	if len(s) > limit {
		s = "…" + s[len(s)-limit:]
	}
	return strconv.Quote(s)
}

// children are the pids whose parent is pid, sorted.
func children(pid int) []int {
	if pid <= 0 {
		return nil
	}
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		c, err := strconv.Atoi(e.Name())
		if err == nil && ppid(c) == pid {
			out = append(out, c)
		}
	}
	slices.Sort(out)
	return out
}

// isWorker tells a worker by its command line: "worker process", or still
// the master's own title in a worker just forked that has not yet set its own
// (on a loaded machine that can last longer than the master's 100 ms between
// starting new workers and stopping the old ones, and such a worker then
// serves the configuration it was forked with).
func isWorker(cmdline string) bool {
	return strings.Contains(cmdline, "worker process") || strings.Contains(cmdline, "master process")
}

// workers are the worker processes of the nginx master pid (its children
// whose command line isWorker).
func workers(master int) []int {
	var out []int
	for _, pid := range children(master) {
		if t, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil && isWorker(string(t)) {
			out = append(out, pid)
		}
	}
	return out
}

// ppid is pid's parent (0 if it is gone).
func ppid(pid int) int {
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(st[bytes.LastIndexByte(st, ')')+1:]))
	if len(f) < 2 {
		return 0
	}
	p, _ := strconv.Atoi(f[1])
	return p
}

// PID is the running master's pid, or 0.
func (n *Nginx) PID() int { return pidAlive(n.L.NginxPID()) }

// Stop stops nginx (QUIT, then KILL after 5 s) and waits for it.
func (n *Nginx) Stop() error { return stopPID(pidAlive(n.L.NginxPID()), 5*time.Second) }

// pidAlive reads a pid file and returns the pid if that process exists.
func pidAlive(file string) int {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return 0
	}
	if err := syscall.Kill(pid, 0); err != nil {
		return 0
	}
	// A zombie is not ours.
	if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		if f := strings.Fields(string(st[bytes.LastIndexByte(st, ')')+1:])); len(f) > 0 && f[0] == "Z" {
			return 0
		}
	}
	// Nor is a recycled pid of another program: a pid file left by a master
	// that died (killed, OOM, power loss) whose pid now names something else
	// must not get the USR1/QUIT meant for nginx or PHP-FPM (review64 R2).
	// The pid files are nginx's and PHP-FPM's only; their executables are
	// nginx and php-fpm<version> (" (deleted)" after a package upgrade).
	if !masterExe(pid) {
		return 0
	}
	return pid
}

// masterExe reports whether pid runs nginx or PHP-FPM, by its executable's
// name. An unreadable link (not root) is taken as theirs, as before.
func masterExe(pid int) bool {
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return os.IsPermission(err)
	}
	b := filepath.Base(exe)
	return strings.HasPrefix(b, "nginx") || strings.HasPrefix(b, "php-fpm")
}

func stopPID(pid int, grace time.Duration) error {
	if pid <= 0 {
		return nil
	}
	_ = syscall.Kill(pid, syscall.SIGQUIT)
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if syscall.Kill(pid, 0) != nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	return nil
}

// WriteFileAtomic writes b to a temporary file beside path, fsyncs it and
// renames it over path (atomicfile.Write).
func WriteFileAtomic(path string, b []byte, mode os.FileMode) error {
	return atomicfile.Write(path, b, mode)
}

// SetHost points a host name at an account (hosts/<host> → ../sites/<user>)
// with an atomic rename: nginx serves it on the next request.
func (l Layout) SetHost(host, user string) error {
	tmp := filepath.Join(l.HostsDir(), "."+host+".tmp")
	_ = os.Remove(tmp)
	if err := os.Symlink(filepath.Join("..", "sites", user), tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, l.Host(host)); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return nil
}

// HostUser is the account a host name points at ("" if none).
func (l Layout) HostUser(host string) string {
	t, err := os.Readlink(l.Host(host))
	if err != nil {
		return ""
	}
	return filepath.Base(t)
}

// RemoveHost detaches a host name (no error if it was not attached).
func (l Layout) RemoveHost(host string) error {
	if err := os.Remove(l.Host(host)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
