package hosting

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"text/template"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/validate"
)

// Config configures a hosting node.
type Config struct {
	Root          string // Layout root (/var/lib/hostplane/hosting)
	HTTPListen    string // nginx's HTTP address (0.0.0.0:80)
	NginxBin      string // nginx
	NginxConfDir  string // /etc/nginx (mime.types, fastcgi_params)
	NginxWorkers  string // auto
	WebUser       string // www-data: nginx workers' user and the docroots' group
	FPMGlob       string // /usr/sbin/php-fpm*
	MariaDBClient string // mariadb
	MariaDBSocket string // /run/mysqld/mysqld.sock
	SFTPGroup     string // hostplane-sftp: members are chrooted to sites/<user>
	MailSpool     string // /var/mail
	// TempDirs are the node's shared, sticky temporary directories, where an
	// account's PHP can leave files outside its home; a deleted account's
	// are removed there (nil: DefaultTempDirs).
	TempDirs []string
	// Btrfs is the btrfs command (btrfs-progs): it makes the sites'
	// subvolumes and sets their disk limits where sites/ is on btrfs with
	// quotas enabled ("": btrfs).
	Btrfs string
	// SFTPHost and SFTPPort are where customers reach the node's sshd
	// (Connection): its public host name ("": each account's domain) and
	// port (0: 22).
	SFTPHost string
	SFTPPort int
}

// DefaultTempDirs are the shared temporary directories of a Debian node.
var DefaultTempDirs = []string{"/tmp", "/var/tmp", "/dev/shm"}

// DefaultConfig is the production layout on Debian.
func DefaultConfig() Config {
	return Config{Root: "/var/lib/hostplane/hosting", HTTPListen: "0.0.0.0:80", NginxBin: "nginx",
		NginxConfDir: "/etc/nginx", NginxWorkers: "auto", WebUser: "www-data", FPMGlob: "/usr/sbin/php-fpm*",
		MariaDBClient: "mariadb", MariaDBSocket: "/run/mysqld/mysqld.sock", SFTPGroup: "hostplane-sftp",
		MailSpool: "/var/mail", Btrfs: "btrfs", SFTPPort: 22}
}

// userComment marks the Linux users this package created (GECOS field).
const userComment = "hostplane hosting account"

// Node runs a hosting node's accounts.
type Node struct {
	cfg   Config
	L     Layout
	Nginx *Nginx
	FPM   *FPM
	DB    *MariaDB

	// sitesMu holds reading the accounts' records and applying their
	// limits to nginx together (SyncSites): two unserialized syncs could
	// apply an older list last.
	sitesMu sync.Mutex
	// usage is held by the usage request walking the sites (Usage).
	usage chan struct{}
	// last is each account's last figure measured whole (siteBytes).
	lastMu sync.Mutex
	last   map[string]uint64
	// tried is when each account's site was last walked by Usage (turn,
	// counting up; guarded by lastMu).
	tried map[string]uint64
	turn  uint64
	// walk measures a site (nil: SiteUsage; tests set it).
	walk func(ctx context.Context, dir string) (uint64, error)
	// resultWalkBound bounds an action result's walk (siteBytes):
	// siteUsageTimeout; tests shorten it.
	resultWalkBound time.Duration
	// quota is how sites/ holds disk allowances (DiskQuota).
	quotaMu sync.Mutex
	quota   *DiskQuota
	// limits is what Start's ConvergeLimits did (guarded by quotaMu).
	limits LimitsReport
	// staleMu holds the deleted-qgroups file (SweepStaleQgroups).
	staleMu sync.Mutex
	// dbPort is the TCP port MariaDB last answered (Connection), and
	// whether it ever has.
	dbPortMu    sync.Mutex
	dbPort      int
	dbPortKnown bool
}

// New returns a node; Start brings up its nginx.
func New(cfg Config) (*Node, error) {
	if !safeWordRE.MatchString(cfg.SFTPGroup) || !safeWordRE.MatchString(cfg.WebUser) {
		return nil, fmt.Errorf("hosting: sftp group %q and web user %q must be plain names", cfg.SFTPGroup, cfg.WebUser)
	}
	if !safePathRE.MatchString(cfg.MailSpool) {
		return nil, fmt.Errorf("hosting: mail spool %q must be an absolute path", cfg.MailSpool)
	}
	// Every pool names the MariaDB socket (PoolParams.DBSocket): refused
	// here rather than by the first pool rendered.
	if err := checkPoolPath(cfg.MariaDBSocket); cfg.MariaDBSocket != "" && err != nil {
		return nil, fmt.Errorf("hosting: mariadb socket: %w", err)
	}
	l := Layout{Root: cfg.Root}
	n := &Node{cfg: cfg, L: l, usage: make(chan struct{}, 1), last: map[string]uint64{}, tried: map[string]uint64{},
		resultWalkBound: siteUsageTimeout,
		Nginx: &Nginx{L: l, Bin: cfg.NginxBin, Params: NginxParams{Root: cfg.Root, User: cfg.WebUser, Listen: cfg.HTTPListen,
			ConfDir: cfg.NginxConfDir, Workers: cfg.NginxWorkers}},
		FPM: &FPM{L: l, Glob: cfg.FPMGlob},
		DB:  &MariaDB{Client: cfg.MariaDBClient, Socket: cfg.MariaDBSocket}}
	return n, nil
}

// Start renders the layout, starts (or reloads) nginx, finds out whether
// disk allowances are enforced and sets each enforced account's limit to
// its plan's (ConvergeLimits, Limits), rewrites the existing
// pools from the accounts' records (RefreshPools: an upgraded agent's pool
// settings reach the existing sites), starts the PHP-FPM masters that have
// pools and are not running, writes the sshd Match block and makes the SFTP
// group.
func (n *Node) Start(ctx context.Context) error {
	n.sitesMu.Lock()
	sites, err := n.siteLimits()
	if err == nil {
		n.Nginx.Sites = sites
		err = n.Nginx.Ensure(ctx)
	}
	n.sitesMu.Unlock()
	if err != nil {
		return err
	}
	n.refreshQuota(ctx) // sites/ exists now (Nginx.Ensure)
	// Each enforced account's limit is its plan's again, whatever a crash
	// or an operator left (best effort: Limits says what failed).
	lim := n.ConvergeLimits(ctx)
	n.quotaMu.Lock()
	n.limits = lim
	n.quotaMu.Unlock()
	if _, err := n.RefreshPools(ctx); err != nil {
		return err
	}
	if err := n.FPM.EnsureRunning(ctx); err != nil {
		return err
	}
	if err := ensureGroup(ctx, n.cfg.SFTPGroup); err != nil {
		return err
	}
	var b strings.Builder
	if err := sftpTemplate.Execute(&b, struct{ Group, Sites string }{n.cfg.SFTPGroup, filepath.Join(n.L.Root, "sites")}); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(n.L.SFTPConf()), 0o755); err != nil {
		return err
	}
	return WriteFileAtomic(n.L.SFTPConf(), []byte(b.String()), 0o644)
}

// RefreshPools rewrites every unsuspended account's existing pool from its
// record (FPM.RefreshPools) and returns how many files changed.
func (n *Node) RefreshPools(ctx context.Context) (int, error) {
	pools := map[string]PoolParams{}
	for _, u := range n.Accounts() {
		a, err := n.load(u)
		if err != nil {
			return 0, fmt.Errorf("account %s: %w", u, err)
		}
		if a.Suspended {
			continue
		}
		pools[u] = n.pool(a)
	}
	return n.FPM.RefreshPools(ctx, pools)
}

// siteLimits are the nginx limits of every account on the node (suspended
// ones too: their site answers 503 before its limits apply).
func (n *Node) siteLimits() ([]SiteLimits, error) {
	var out []SiteLimits
	for _, u := range n.Accounts() {
		a, err := n.load(u)
		if err != nil {
			return nil, fmt.Errorf("account %s: %w", u, err)
		}
		out = append(out, n.site(a))
	}
	return out, nil
}

// site is an account's nginx limits: its plan's upload limit, and a read
// timeout 5 s past the pool's request_terminate_timeout (PHP-FPM ends a
// request that runs too long, not nginx).
func (n *Node) site(a account) SiteLimits {
	return SiteLimits{User: a.Username, UploadMiB: a.Plan.UploadMiB, ReadTimeoutSeconds: n.pool(a).RequestTerminateSecond + 5}
}

// SyncSites renders nginx's site.conf from the accounts' records and
// reloads nginx if it changed.
func (n *Node) SyncSites(ctx context.Context) error {
	n.sitesMu.Lock()
	defer n.sitesMu.Unlock()
	sites, err := n.siteLimits()
	if err != nil {
		return err
	}
	return n.Nginx.SetSites(ctx, sites)
}

// Stop stops nginx and the PHP-FPM masters (tests; a node keeps them running
// across agent restarts otherwise).
func (n *Node) Stop() {
	_ = n.Nginx.Stop()
	n.FPM.StopAll()
}

var sftpTemplate = template.Must(template.New("sftp.conf").Parse(`# rendered by hostplane-agent (hosting role): include from sshd_config (at its end)
Match Group {{.Group}}
  ChrootDirectory {{.Sites}}/%u
  ForceCommand internal-sftp -u 027
  PasswordAuthentication yes
  PermitTTY no
  AllowTcpForwarding no
  AllowAgentForwarding no
  AllowStreamLocalForwarding no
  X11Forwarding no
  PermitTunnel no
`))

// PHPVersions are the PHP-FPM versions installed on the node.
func (n *Node) PHPVersions() []string {
	v, _ := PHPVersions(n.cfg.FPMGlob)
	return v
}

// CreateInput is a new account as the journal keeps it: password hashes only.
type CreateInput struct {
	Username   string          `json:"username"`
	Domain     string          `json:"domain"`
	Plan       api.HostingPlan `json:"plan"`
	PHPVersion string          `json:"php_version"`
	// SFTPHash is the SHA-512 crypt hash of the SFTP password.
	SFTPHash string `json:"sftp_hash"`
	// DBHash is the mysql_native_password hash of the database password.
	DBHash string `json:"db_hash"`
}

// account is accounts/<user>.json.
type account struct {
	Username   string          `json:"username"`
	Domain     string          `json:"domain"`
	Plan       api.HostingPlan `json:"plan"`
	PHPVersion string          `json:"php_version"`
	Suspended  bool            `json:"suspended"`
}

// ErrExists: the username, database or domain is taken by something that is
// not this account.
var ErrExists = errors.New("already exists")

// ErrNotFound: no such account on this node.
var ErrNotFound = errors.New("not found")

// CheckPlan validates a plan's limits (validate.HostingPlan).
func CheckPlan(p api.HostingPlan) error {
	if err := validate.HostingPlan(p); err != nil {
		return validate.Invalid("plan %s", validate.Reason(err))
	}
	return nil
}

// Check validates a create input and that its PHP version is installed.
func (n *Node) Check(in CreateInput) error {
	if err := validate.HostingUsername(in.Username); err != nil {
		return err
	}
	if d, err := validate.Domain(in.Domain); err != nil {
		return err
	} else if d != in.Domain {
		return validate.Invalid("domain must be sent in its ASCII form %q", d)
	}
	if err := CheckPlan(in.Plan); err != nil {
		return err
	}
	if err := n.CheckPHP(in.PHPVersion); err != nil {
		return err
	}
	if !cryptHashRE.MatchString(in.SFTPHash) || !nativeHashRE.MatchString(in.DBHash) {
		return validate.Invalid("password hashes are malformed")
	}
	return nil
}

// CheckPHP refuses a version that is not installed, listing those that are.
func (n *Node) CheckPHP(v string) error {
	if err := validate.PHPVersion(v); err != nil {
		return err
	}
	if vs := n.PHPVersions(); !slices.Contains(vs, v) {
		return validate.Invalid("php_version %s is not installed on this node; installed: %s", v, strings.Join(vs, ", "))
	}
	return nil
}

// Precheck refuses a create whose username, database or domain belongs to
// something else; a partial account of the same username (a create resumed
// after a crash) passes.
func (n *Node) Precheck(ctx context.Context, in CreateInput) error {
	if u, err := lookupUser(in.Username); err != nil {
		return err
	} else if u != nil && u.comment != userComment {
		return fmt.Errorf("%w: a system user %s exists on the node", ErrExists, in.Username)
	}
	if a, err := n.load(in.Username); err == nil && a.Domain != in.Domain {
		return fmt.Errorf("%w: account %s exists with domain %s", ErrExists, in.Username, a.Domain)
	}
	if owner := n.L.HostUser(in.Domain); owner != "" && owner != in.Username {
		return fmt.Errorf("%w: domain %s is served by another account", ErrExists, in.Domain)
	}
	if _, err := os.Stat(n.L.Account(in.Username)); errors.Is(err, os.ErrNotExist) {
		if u, _ := lookupUser(in.Username); u == nil {
			if ok, err := n.DB.DatabaseExists(ctx, in.Username); err != nil {
				return fmt.Errorf("database server: %w", err)
			} else if ok {
				return fmt.Errorf("%w: database %s exists on the node", ErrExists, in.Username)
			}
		}
	}
	return nil
}

func (n *Node) load(user string) (account, error) {
	var a account
	b, err := os.ReadFile(n.L.Account(user))
	if errors.Is(err, os.ErrNotExist) {
		return a, fmt.Errorf("%w: hosting account %s", ErrNotFound, user)
	}
	if err != nil {
		return a, err
	}
	err = json.Unmarshal(b, &a)
	return a, err
}

func (n *Node) save(a account) error {
	b, err := json.Marshal(a)
	if err != nil {
		return err
	}
	return WriteFileAtomic(n.L.Account(a.Username), b, 0o600)
}

// update loads user's account record, changes it and saves it, before the
// work the change records (Suspend, SetPlan); the record saved is returned.
func (n *Node) update(user string, change func(*account)) (account, error) {
	a, err := n.load(user)
	if err != nil {
		return a, err
	}
	change(&a)
	return a, n.save(a)
}

// View is the account as reported in results.
func (n *Node) View(user string) (*api.NodeHostingAccount, error) {
	a, err := n.load(user)
	if err != nil {
		return nil, err
	}
	return &api.NodeHostingAccount{Username: a.Username, Domain: a.Domain, Plan: a.Plan, PHPVersion: a.PHPVersion,
		Suspended: a.Suspended, Database: a.Username, DiskBytes: n.siteBytes(a.Username),
		QuotaEnforced: n.quotaEnforced(a.Username)}, nil
}

// Accounts lists the usernames of the node's accounts.
func (n *Node) Accounts() []string {
	m, _ := filepath.Glob(filepath.Join(n.L.Root, "accounts", "*.json"))
	var out []string
	for _, p := range m {
		out = append(out, strings.TrimSuffix(filepath.Base(p), ".json"))
	}
	slices.Sort(out)
	return out
}

func (n *Node) pool(a account) PoolParams {
	return PoolParams{User: a.Username, Group: a.Username, WebGroup: n.cfg.WebUser, Socket: n.L.Socket(a.Username),
		Site: n.L.Site(a.Username), DBSocket: n.cfg.MariaDBSocket, MaxChildren: a.Plan.PHPWorkers, MemoryMiB: a.Plan.PHPMemoryMiB,
		MaxExecutionSeconds: a.Plan.MaxExecutionSeconds, UploadMiB: a.Plan.UploadMiB,
		RequestTerminateSecond: a.Plan.MaxExecutionSeconds + 5}
}

// Step is called before each step of an operation with its name (the
// journal's recovery point).
type Step func(name string) error

// Create makes the account: each step is idempotent, so a create resumed after
// a crash runs them all again; on failure the steps that ran are undone in
// reverse (the user, database and files this create made).
func (n *Node) Create(ctx context.Context, in CreateInput, step Step) (res *api.NodeHostingAccount, err error) {
	if err := n.Check(in); err != nil {
		return nil, err
	}
	var undo []func()
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
		}
	}()
	u := in.Username
	bg := context.WithoutCancel(ctx)
	if err := step("user"); err != nil {
		return nil, err
	}
	if err := ensureGroup(ctx, n.cfg.SFTPGroup); err != nil {
		return nil, err
	}
	ent, err := lookupUser(u)
	if err != nil {
		return nil, err
	}
	if ent == nil {
		if _, err := run(ctx, "", "useradd", "--home-dir", n.L.Site(u), "--no-create-home", "--shell", "/usr/sbin/nologin",
			"--user-group", "--groups", n.cfg.SFTPGroup, "--comment", userComment, u); err != nil {
			return nil, err
		}
		undo = append(undo, func() { _ = n.removeUser(bg, u) })
	}
	if _, err := run(ctx, u+":"+in.SFTPHash+"\n", "chpasswd", "-e"); err != nil {
		return nil, errors.New("setting the sftp password failed")
	}
	if err := step("files"); err != nil {
		return nil, err
	}
	// The site subvolume and its limit (where quotas are on) are part of
	// this step: resumed, it finds the subvolume and sets the limit.
	if err := n.ensureSiteVolume(ctx, u, in.Plan.DiskMiB); err != nil {
		return nil, err
	}
	undo = append(undo, func() { _ = n.removeSite(bg, u) })
	if err := n.makeDirs(u); err != nil {
		return nil, err
	}
	if err := step("database"); err != nil {
		return nil, err
	}
	if err := n.DB.EnsureAccount(ctx, u, u, in.DBHash); err != nil {
		return nil, fmt.Errorf("database: %w", err)
	}
	undo = append(undo, func() { _ = n.DB.Drop(bg, u, u) })
	a := account{Username: u, Domain: in.Domain, Plan: in.Plan, PHPVersion: in.PHPVersion}
	if old, err := n.load(u); err == nil {
		a.Suspended = old.Suspended
	}
	if err := n.save(a); err != nil {
		return nil, err
	}
	undo = append(undo, func() {
		_ = os.Remove(n.L.Account(u))
		_ = n.SyncSites(bg)
	})
	if err := step("pool"); err != nil {
		return nil, err
	}
	if !a.Suspended {
		if err := n.FPM.PutPool(ctx, a.PHPVersion, n.pool(a)); err != nil {
			return nil, err
		}
		undo = append(undo, func() { _ = n.FPM.RemovePool(bg, u) })
	}
	if err := step("site"); err != nil {
		return nil, err
	}
	// The account's limits reach nginx before its host name does.
	if err := n.SyncSites(ctx); err != nil {
		return nil, err
	}
	if err := n.L.SetHost(in.Domain, u); err != nil {
		return nil, err
	}
	undo = append(undo, func() { _ = n.L.RemoveHost(in.Domain) })
	return n.View(u)
}

// PasswordInput is a password reset as the journal keeps it: the hashes of
// the new passwords only; an empty hash leaves that password as it is.
type PasswordInput struct {
	// SFTPHash is the SHA-512 crypt hash of the new SFTP password.
	SFTPHash string `json:"sftp_hash,omitempty"`
	// DBHash is the mysql_native_password hash of the new database password.
	DBHash string `json:"db_hash,omitempty"`
}

// Check validates the hashes (at least one is set).
func (in PasswordInput) Check() error {
	if in.SFTPHash == "" && in.DBHash == "" {
		return validate.Invalid("a password reset needs a new sftp or database password")
	}
	if in.SFTPHash != "" && !cryptHashRE.MatchString(in.SFTPHash) || in.DBHash != "" && !nativeHashRE.MatchString(in.DBHash) {
		return validate.Invalid("password hashes are malformed")
	}
	return nil
}

// CheckPasswordReset refuses a reset of an account that is not on the node,
// or is suspended (its system user is locked: setting a hash would unlock
// it, and its database user is locked too).
func (n *Node) CheckPasswordReset(u string) error {
	if err := validate.HostingUsername(u); err != nil {
		return err
	}
	a, err := n.load(u)
	if err != nil {
		return err
	}
	if a.Suspended {
		return fmt.Errorf("%w: hosting account %s is suspended; unsuspend it first", ErrSuspended, u)
	}
	ent, err := lookupUser(u)
	if err != nil {
		return err
	}
	if ent == nil || ent.comment != userComment {
		return fmt.Errorf("%w: the system user of hosting account %s", ErrNotFound, u)
	}
	return nil
}

// ErrSuspended: the account is suspended on the node.
var ErrSuspended = errors.New("suspended")

// ResetPasswords sets the account's new SFTP password (its system user's
// hash, through chpasswd -e on stdin) and/or database password (its MariaDB
// user's hash). Each step is idempotent, so a reset resumed after a crash
// runs them again. Sessions already open stay open.
func (n *Node) ResetPasswords(ctx context.Context, u string, in PasswordInput, step Step) (*api.NodeHostingAccount, error) {
	if err := in.Check(); err != nil {
		return nil, err
	}
	if err := n.CheckPasswordReset(u); err != nil {
		return nil, err
	}
	if in.SFTPHash != "" {
		if err := step("sftp"); err != nil {
			return nil, err
		}
		if _, err := run(ctx, u+":"+in.SFTPHash+"\n", "chpasswd", "-e"); err != nil {
			return nil, errors.New("setting the sftp password failed")
		}
	}
	if in.DBHash != "" {
		if err := step("database"); err != nil {
			return nil, err
		}
		if err := n.DB.SetPassword(ctx, u, in.DBHash); err != nil {
			return nil, fmt.Errorf("database: %w", err)
		}
	}
	return n.View(u)
}

// makeDirs makes the account's directories with their owners and modes.
func (n *Node) makeDirs(u string) error {
	ent, err := lookupUser(u)
	if err != nil || ent == nil {
		return fmt.Errorf("user %s: %v", u, err)
	}
	web, err := lookupGroupID(n.cfg.WebUser)
	if err != nil {
		return err
	}
	site := n.L.Site(u)
	dirs := []struct {
		path      string
		uid, gid  int
		mode      os.FileMode
		setgidDir bool
	}{
		{site, 0, 0, 0o755, false},
		{filepath.Join(site, "public"), ent.uid, web, 0o750, true},
		{filepath.Join(site, "private"), ent.uid, ent.gid, 0o700, false},
		{filepath.Join(site, "tmp"), ent.uid, ent.gid, 0o700, false},
		{filepath.Join(site, "run"), 0, web, 0o750, false},
	}
	for _, d := range dirs {
		if err := os.Mkdir(d.path, d.mode); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
		if err := os.Lchown(d.path, d.uid, d.gid); err != nil {
			return err
		}
		m := d.mode
		if d.setgidDir {
			m |= os.ModeSetgid
		}
		if err := os.Chmod(d.path, m); err != nil {
			return err
		}
	}
	return nil
}

func lookupGroupID(name string) (int, error) {
	g, err := userLookupGroup(name)
	if err != nil {
		return 0, fmt.Errorf("group %s: %w", name, err)
	}
	return g, nil
}

// suspension is one thing a suspension stops (on) and an unsuspension
// restores (off), under its step name.
type suspension struct {
	step    string
	on, off func() error
}

// suspensions are what Suspend stops, in its order; Unsuspend restores them
// in reverse.
func (n *Node) suspensions(ctx context.Context, u string, a account) []suspension {
	marker := filepath.Join(n.L.Site(u), "suspended")
	usermod := func(flag string) func() error {
		return func() error { _, err := run(ctx, "", "usermod", flag, u); return err }
	}
	dbLock := func(locked bool) func() error {
		return func() error {
			if err := n.DB.Lock(ctx, u, locked); err != nil {
				return fmt.Errorf("database: %w", err)
			}
			return nil
		}
	}
	return []suspension{
		{"site", func() error { return n.writeSiteFile(ctx, u, a.Plan.DiskMiB, marker, []byte("suspended\n"), 0o644) }, func() error {
			if err := os.Remove(marker); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
			return nil
		}},
		{"sftp", usermod("--lock"), usermod("--unlock")},
		{"pool", func() error {
			if err := n.FPM.RemovePool(ctx, u); err != nil {
				return err
			}
			if ent, _ := lookupUser(u); ent != nil {
				killUserProcesses(ent.uid)
			}
			return nil
		}, func() error { return n.FPM.PutPool(ctx, a.PHPVersion, n.pool(a)) }},
		{"database", dbLock(true), dbLock(false)},
	}
}

// Suspend: the site answers the suspension page, SFTP is refused (the
// password is locked), the pool stops and the account's processes are
// ended, the database user is locked and its connections ended. Idempotent.
func (n *Node) Suspend(ctx context.Context, u string, step Step) (*api.NodeHostingAccount, error) {
	a, err := n.update(u, func(a *account) { a.Suspended = true })
	if err != nil {
		return nil, err
	}
	for _, s := range n.suspensions(ctx, u, a) {
		if err := step(s.step); err != nil {
			return nil, err
		}
		if err := s.on(); err != nil {
			return nil, err
		}
	}
	return n.View(u)
}

// Unsuspend restores what Suspend stopped, in reverse. Idempotent.
func (n *Node) Unsuspend(ctx context.Context, u string, step Step) (*api.NodeHostingAccount, error) {
	a, err := n.load(u)
	if err != nil {
		return nil, err
	}
	ss := n.suspensions(ctx, u, a)
	for i := len(ss) - 1; i >= 0; i-- {
		if err := step(ss[i].step); err != nil {
			return nil, err
		}
		if err := ss[i].off(); err != nil {
			return nil, err
		}
	}
	a.Suspended = false
	if err := n.save(a); err != nil {
		return nil, err
	}
	return n.View(u)
}

// SetPHP moves the account's pool to another installed PHP version.
func (n *Node) SetPHP(ctx context.Context, u, version string, step Step) (*api.NodeHostingAccount, error) {
	if err := n.CheckPHP(version); err != nil {
		return nil, err
	}
	a, err := n.load(u)
	if err != nil {
		return nil, err
	}
	if err := step("pool"); err != nil {
		return nil, err
	}
	a.PHPVersion = version
	if !a.Suspended {
		if err := n.FPM.PutPool(ctx, version, n.pool(a)); err != nil {
			return nil, err
		}
	}
	if err := n.save(a); err != nil {
		return nil, err
	}
	return n.View(u)
}

// SetPlan gives the account another plan's limits: its disk limit (where
// its site is a subvolume: a raised allowance lets the next write through,
// a lowered one below the usage refuses writes until files go), its pool
// (unless suspended) and its nginx location. Each step is idempotent: a
// change resumed after a crash sets them all again. No coordinator action
// calls it yet (there is no plan change of a hosting account); it is the
// node's half of one.
func (n *Node) SetPlan(ctx context.Context, u string, p api.HostingPlan, step Step) (*api.NodeHostingAccount, error) {
	if err := validate.HostingUsername(u); err != nil {
		return nil, err
	}
	if err := CheckPlan(p); err != nil {
		return nil, err
	}
	a, err := n.update(u, func(a *account) { a.Plan = p })
	if err != nil {
		return nil, err
	}
	// The disk limit is the site files' part, as in Create (its "files"
	// step): one step name the coordinator already knows.
	if err := step("files"); err != nil {
		return nil, err
	}
	if isSubvolume(n.L.Site(u)) && n.DiskQuota().Enforced {
		if err := n.setSiteLimit(ctx, u, p.DiskMiB); err != nil {
			return nil, err
		}
	}
	if err := step("pool"); err != nil {
		return nil, err
	}
	if !a.Suspended {
		if err := n.FPM.PutPool(ctx, a.PHPVersion, n.pool(a)); err != nil {
			return nil, err
		}
	}
	if err := step("site"); err != nil {
		return nil, err
	}
	if err := n.SyncSites(ctx); err != nil {
		return nil, err
	}
	return n.View(u)
}

// Delete removes the site (every host name pointing at the account, and their
// certificates), the pool, the database and its user, the Linux user, its
// files and mail spool. Idempotent (an account with nothing on the node is
// deleted at once, touching nothing); the username is free afterwards.
func (n *Node) Delete(ctx context.Context, u string, step Step) (*api.NodeHostingAccount, error) {
	if err := validate.HostingUsername(u); err != nil {
		return nil, err
	}
	a, lerr := n.load(u)
	ent, err := lookupUser(u)
	if err != nil {
		return nil, err
	}
	if lerr != nil && (ent == nil || ent.comment != userComment) {
		// Nothing of this account is on the node: a delete done before, or a
		// create that failed before it made anything (the account is then in
		// error and must be deletable). A system user or a database of that
		// name is not ours and is not touched. nginx may still have its
		// limits (a delete stopped after the record went).
		if err := n.SyncSites(ctx); err != nil {
			return nil, err
		}
		return &api.NodeHostingAccount{Username: u, Deleted: true}, nil
	}
	if ent != nil && ent.comment != userComment {
		return nil, fmt.Errorf("%w: %s is a system user, not a hosting account", ErrExists, u)
	}
	if err := step("site"); err != nil {
		return nil, err
	}
	hosts, _ := os.ReadDir(n.L.HostsDir())
	for _, h := range hosts {
		if n.L.HostUser(h.Name()) == u && filepath.Base(filepath.Dir(mustReadlink(n.L.Host(h.Name())))) == "sites" {
			if err := n.L.RemoveHost(h.Name()); err != nil {
				return nil, err
			}
			_ = os.Remove(filepath.Join(n.L.CertsDir(), h.Name()+".pem"))
		}
	}
	if a.Domain != "" && n.L.HostUser(a.Domain) == "" {
		// Not when the name is routed to another account (which took it
		// over with a verified custom domain): the certificate is its.
		_ = os.Remove(filepath.Join(n.L.CertsDir(), a.Domain+".pem"))
	}
	if err := step("pool"); err != nil {
		return nil, err
	}
	if err := n.FPM.RemovePool(ctx, u); err != nil {
		return nil, err
	}
	if err := step("database"); err != nil {
		return nil, err
	}
	if err := n.DB.Drop(ctx, u, u); err != nil {
		return nil, fmt.Errorf("database: %w", err)
	}
	if err := step("user"); err != nil {
		return nil, err
	}
	if err := n.removeUser(ctx, u); err != nil {
		return nil, err
	}
	if err := n.removeSite(ctx, u); err != nil {
		return nil, err
	}
	if err := os.Remove(filepath.Join(n.cfg.MailSpool, u)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if err := os.Remove(n.L.Account(u)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	// Its host names are gone: its location in nginx goes too.
	if err := n.SyncSites(ctx); err != nil {
		return nil, err
	}
	return &api.NodeHostingAccount{Username: u, Domain: a.Domain, Plan: a.Plan, PHPVersion: a.PHPVersion, Deleted: true}, nil
}

func mustReadlink(p string) string {
	t, _ := os.Readlink(p)
	return t
}

// removeUser ends the user's processes and deletes it (and its group).
func (n *Node) removeUser(ctx context.Context, u string) error {
	ent, err := lookupUser(u)
	if err != nil || ent == nil {
		return err
	}
	if ent.comment != userComment {
		return fmt.Errorf("%w: %s is not a hosting account", ErrExists, u)
	}
	killUserProcesses(ent.uid)
	dirs := n.cfg.TempDirs
	if dirs == nil {
		dirs = DefaultTempDirs
	}
	// Before userdel frees the uid: the next account made gets it, and
	// would own what this one left.
	if err := removeOwnedEntries(dirs, ent.uid); err != nil {
		return err
	}
	// A killed process stays in /proc until its parent reaps it (a PHP-FPM
	// worker: its master, which may be busy reloading for another account),
	// and userdel refuses while it is there (exit status 8): try again for
	// a while.
	for i := 0; ; i++ {
		_, err = run(ctx, "", "userdel", u)
		if err == nil || i == 50 || !strings.Contains(err.Error(), "currently used by process") {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond):
		}
		killUserProcesses(ent.uid)
	}
}
