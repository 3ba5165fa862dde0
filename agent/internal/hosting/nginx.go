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
	"strconv"
	"strings"
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
error_log {{.Root}}/nginx/logs/error.log;
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
// looked up from hosts/$hp_site, so attaching a site needs no reload.
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
  try_files $uri $uri/ =404;
}
location ~ \.php$ {
  if (-f $hp_home/suspended) { return 503; }
  try_files $uri =404;
  include {{.ConfDir}}/fastcgi_params;
  fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
  fastcgi_param HTTP_PROXY "";
  fastcgi_pass unix:$hp_home/run/php-fpm.sock;
}
`))

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
}

func (n *Nginx) cmd(ctx context.Context, conf string, args ...string) *exec.Cmd {
	a := append([]string{"-e", filepath.Join(n.L.NginxDir(), "logs", "error.log"), "-c", conf, "-p", n.L.NginxDir() + "/"}, args...)
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
	var a, b bytes.Buffer
	if err := NginxTemplate.Execute(&a, p); err != nil {
		return nil, nil, err
	}
	if err := SiteTemplate.Execute(&b, p); err != nil {
		return nil, nil, err
	}
	return a.Bytes(), b.Bytes(), nil
}

// Ensure makes the layout's directories, renders the configuration and starts
// nginx, or reloads it when the configuration changed. A changed configuration
// is checked with nginx -t first; if the reload fails the previous files are
// put back and nginx is reloaded on them.
func (n *Nginx) Ensure(ctx context.Context) error {
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
	// messages, and a site's PHP runs commands as its account: root only
	// (the master opens them; workers inherit the descriptors).
	logs := filepath.Join(n.L.NginxDir(), "logs")
	if err := os.MkdirAll(logs, 0o700); err != nil {
		return err
	}
	if err := os.Chmod(logs, 0o700); err != nil {
		return err
	}
	if err := WriteFileAtomic(filepath.Join(n.L.NginxDir(), "pages", "suspended.html"), []byte(suspendedPage), 0o644); err != nil {
		return err
	}
	return n.Apply(ctx, conf, site)
}

// Apply installs a new nginx.conf and site.conf (either may be nil: kept) the
// safe way: nginx -t on the candidates, atomic renames, then a start or a
// reload; on a failed reload the previous files come back.
func (n *Nginx) Apply(ctx context.Context, conf, site []byte) error {
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
		return n.start(ctx)
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

// Reload re-reads the configuration (SIGHUP to the master) and waits until
// the master's log confirms it or 5 s pass.
func (n *Nginx) Reload(ctx context.Context) error {
	// nginx -s reload parses the configuration first and fails on an error,
	// where a bare HUP would leave the old workers running silently.
	if out, err := n.cmd(ctx, n.L.NginxConf(), "-s", "reload").CombinedOutput(); err != nil {
		return fmt.Errorf("nginx -s reload: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
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
	// A zombie or a recycled pid of another program is not ours.
	if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		if f := strings.Fields(string(st[bytes.LastIndexByte(st, ')')+1:])); len(f) > 0 && f[0] == "Z" {
			return 0
		}
	}
	return pid
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
