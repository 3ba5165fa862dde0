// Package config holds the agent's configuration: defaults, then an optional JSON
// file, then HOSTPLANE_AGENT_* environment variables, then flags; then Validate.
// The layering is the coordinator's (internal/conflayer): file keys are flag
// names ("pool-name"), variables are HOSTPLANE_AGENT_<FLAG_NAME>. The
// snake_case file keys of earlier releases ("pool_name") are still accepted.
package config

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/hostplane/hostplane/agent/internal/hosting"
	"github.com/hostplane/hostplane/internal/conflayer"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/validate"
)

// Config is the agent's configuration.
type Config struct {
	DataDir       string        `json:"data_dir"`       // journal, templates' kernels, console logs
	Socket        string        `json:"socket"`         // local API unix socket
	LibvirtSocket string        `json:"libvirt_socket"` // libvirtd's unix socket
	PoolName      string        `json:"pool_name"`      // dedicated libvirt dir pool
	PoolPath      string        `json:"pool_path"`
	DomainType    string        `json:"domain_type"` // auto, kvm or qemu
	Machine       string        `json:"machine"`     // QEMU machine type
	Emulator      string        `json:"emulator"`
	StopGrace     time.Duration `json:"stop_grace"`     // ACPI shutdown wait before forcing off
	Network       string        `json:"network"`        // default VM network
	MinFreeBytes  uint64        `json:"min_free_bytes"` // refuse new disks below this pool free space
	StatsInterval time.Duration `json:"stats_interval"`
	StatsRing     int           `json:"stats_ring"` // samples kept per VM
	// JournalRetention is how long finished operations stay in the journal (and
	// so replay their result); running ones are never pruned.
	JournalRetention time.Duration `json:"journal_retention"`
	LogLevel         string        `json:"log_level"`
	LogFormat        string        `json:"log_format"` // json or text on stdout, or journal (native journald fields)
	// Coordinators are the coordinators' agent session addresses (host:port,
	// UDP); empty: the agent runs without a coordinator session.
	Coordinators []string `json:"coordinators,omitempty"`
	// JoinToken enrols the node once (hostplanectl node token create); after
	// that the node's certificate in DataDir/session is used.
	JoinToken string `json:"join_token,omitempty"`
	// NodeID names the node to the coordinators (default: the host name).
	NodeID string `json:"node_id,omitempty"`
	// Bridges are the Linux bridges guests may join (a provision's bridge must
	// be one of them); each must exist when the agent starts. They are
	// reported to the coordinators, which place servers by bridge.
	Bridges []string `json:"bridges,omitempty"`
	// Roles are what the node does: kvm (guests on libvirt), hosting (web
	// hosting accounts on nginx, PHP-FPM, MariaDB and sshd), or both.
	Roles []string `json:"roles,omitempty"`
	// Hosting role settings (see agent/internal/hosting for the layout).
	HostingRoot       string `json:"hosting_root,omitempty"`
	HostingHTTPListen string `json:"hosting_http_listen,omitempty"`
	// HostingTLSListen is nginx's TLS address for custom domains ("" for none).
	HostingTLSListen string `json:"hosting_tls_listen,omitempty"`
	// HostingTLSMode is how nginx finds a handshake's certificate: lua (cache) or variable.
	HostingTLSMode       string `json:"hosting_tls_mode,omitempty"`
	HostingMariaDBSocket string `json:"hosting_mariadb_socket,omitempty"`
	HostingSFTPGroup     string `json:"hosting_sftp_group,omitempty"`
	HostingFPMGlob       string `json:"hosting_fpm_glob,omitempty"`
	// HostingSFTPHost is the node's public host name (or address) its
	// customers reach its sshd at, shown as each account's sftp_host
	// ("": none, each account's own domain is shown); HostingSFTPPort is
	// the port its sshd listens on (default 22). The MariaDB port shown is
	// the one the node's MariaDB says it listens on.
	HostingSFTPHost string `json:"hosting_sftp_host,omitempty"`
	HostingSFTPPort int    `json:"hosting_sftp_port,omitempty"`
	// Failpoint kills the process (SIGKILL) when an operation reaches the named step,
	// e.g. "vm.reinstall:disk-swapped". Crash tests only.
	Failpoint string `json:"failpoint,omitempty"`
	// ConsoleListen is the browser console's TCP address ("" turns it off);
	// ConsoleURL the base URL browsers reach it at (default https://<listen>);
	// ConsoleTLSCert/Key its certificate (default: the node certificate);
	// NoVNCDir the noVNC client it serves; ConsoleMaxPerServer how many
	// consoles one server may have open at once.
	ConsoleListen       string `json:"console_listen,omitempty"`
	ConsoleURL          string `json:"console_url,omitempty"`
	ConsoleTLSCert      string `json:"console_tls_cert,omitempty"`
	ConsoleTLSKey       string `json:"console_tls_key,omitempty"`
	NoVNCDir            string `json:"novnc_dir,omitempty"`
	ConsoleMaxPerServer int    `json:"console_max_per_server,omitempty"`
}

// Default returns the built-in defaults.
func Default() Config {
	return Config{
		DataDir:              "/var/lib/hostplane/agent",
		Socket:               api.NodeDefaultSocket,
		LibvirtSocket:        "/var/run/libvirt/libvirt-sock",
		PoolName:             "hostplane",
		PoolPath:             "/var/lib/hostplane/pool",
		DomainType:           "auto",
		Machine:              "pc",
		Emulator:             "/usr/bin/qemu-system-x86_64",
		StopGrace:            60 * time.Second,
		Network:              "user",
		MinFreeBytes:         1 << 30,
		StatsInterval:        10 * time.Second,
		StatsRing:            60,
		JournalRetention:     7 * 24 * time.Hour,
		LogLevel:             "info",
		LogFormat:            "json",
		Roles:                []string{"kvm"},
		HostingRoot:          hosting.DefaultConfig().Root,
		HostingHTTPListen:    hosting.DefaultConfig().HTTPListen,
		HostingMariaDBSocket: hosting.DefaultConfig().MariaDBSocket,
		HostingSFTPGroup:     hosting.DefaultConfig().SFTPGroup,
		HostingFPMGlob:       hosting.DefaultConfig().FPMGlob,
		HostingSFTPPort:      22,
		ConsoleListen:        "127.0.0.1:8423",
		NoVNCDir:             "/usr/share/novnc",
	}
}

// EnvPrefix starts the agent's environment variables (HOSTPLANE_AGENT_POOL_NAME).
const EnvPrefix = "HOSTPLANE_AGENT_"

// flags is c's settings as a flag set bound to c.
func (c *Config) flags() conflayer.Flags {
	fs := flag.NewFlagSet("layer", flag.ContinueOnError)
	c.RegisterFlags(fs)
	return conflayer.Std(fs)
}

// LoadFile overlays a JSON config file onto c. Keys are flag names; the
// snake_case keys of earlier releases are aliases.
func (c *Config) LoadFile(path string) error {
	f := c.flags()
	return conflayer.File(f, path, conflayer.SnakeAliases(f))
}

// LoadEnv overlays HOSTPLANE_AGENT_* variables.
func (c *Config) LoadEnv(getenv func(string) string) error {
	return conflayer.Env(c.flags(), EnvPrefix, getenv)
}

// Load layers the config file (if any), the environment and the flags set on
// the parsed command line fs over the defaults.
func Load(configFile string, getenv func(string) string, fs *flag.FlagSet) (Config, error) {
	c := Default()
	f := c.flags()
	err := conflayer.Load(f, conflayer.Layers{
		File: configFile, Aliases: conflayer.SnakeAliases(f), EnvPrefix: EnvPrefix, Getenv: getenv,
		CommandLine: conflayer.StdVisited(fs),
	})
	return c, err
}

// RegisterFlags binds every field to a flag on fs, with the current values as defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "directory for the journal, template kernels and console logs")
	fs.StringVar(&c.Socket, "socket", c.Socket, "local API unix socket")
	fs.StringVar(&c.LibvirtSocket, "libvirt-socket", c.LibvirtSocket, "libvirtd unix socket")
	fs.StringVar(&c.PoolName, "pool-name", c.PoolName, "libvirt storage pool (dir) the agent owns")
	fs.StringVar(&c.PoolPath, "pool-path", c.PoolPath, "directory of the storage pool")
	fs.StringVar(&c.DomainType, "domain-type", c.DomainType, "auto, kvm or qemu (TCG); auto picks kvm only with vmx/svm and a usable /dev/kvm")
	fs.StringVar(&c.Machine, "machine", c.Machine, "QEMU machine type")
	fs.StringVar(&c.Emulator, "emulator", c.Emulator, "QEMU binary")
	fs.DurationVar(&c.StopGrace, "stop-grace", c.StopGrace, "how long stop and reboot wait for an ACPI shutdown before forcing off")
	fs.StringVar(&c.Network, "network", c.Network, "default VM network: user, network:NAME or bridge:NAME")
	fs.Uint64Var(&c.MinFreeBytes, "min-free-bytes", c.MinFreeBytes, "refuse to create disks when the pool has less free space")
	fs.DurationVar(&c.StatsInterval, "stats-interval", c.StatsInterval, "stats sampling interval")
	fs.IntVar(&c.StatsRing, "stats-ring", c.StatsRing, "stats samples kept per VM")
	fs.DurationVar(&c.JournalRetention, "journal-retention", c.JournalRetention, "finished operations older than this are pruned from the journal (their ids no longer replay)")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "json or text on stdout, or journal (native journald entries, one field per attribute)")
	fs.Var((*listValue)(&c.Coordinators), "coordinators", "comma-separated agent session addresses (host:port) of the coordinators; empty: no coordinator session")
	fs.StringVar(&c.JoinToken, "join-token", c.JoinToken, "join token for the first start (hostplanectl node token create); prefer HOSTPLANE_AGENT_JOIN_TOKEN")
	fs.Var((*addListValue)(&c.Bridges), "bridge", "a Linux bridge guests may join (repeatable, or comma-separated; each use adds to the list, also over the config file's list); it must exist at start")
	fs.StringVar(&c.NodeID, "node-id", c.NodeID, "node id the coordinators know this node by (default: the host name)")
	fs.Var((*listValue)(&c.Roles), "roles", "comma-separated roles of the node: kvm (guests on libvirt), hosting (web hosting accounts), or kvm,hosting")
	fs.StringVar(&c.HostingRoot, "hosting-root", c.HostingRoot, "hosting role: root of the sites, nginx and PHP-FPM layout (every component root-owned, not group/world-writable: it holds the SFTP chroots)")
	fs.StringVar(&c.HostingHTTPListen, "hosting-http-listen", c.HostingHTTPListen, "hosting role: nginx's HTTP listen address")
	fs.StringVar(&c.HostingTLSListen, "hosting-tls-listen", c.HostingTLSListen, "hosting role: nginx's TLS listen address for custom domains (e.g. 0.0.0.0:443; empty: no TLS server block)")
	fs.StringVar(&c.HostingTLSMode, "hosting-tls-mode", c.HostingTLSMode, "hosting role: how nginx finds a handshake's certificate: lua (per-worker cache, needs libnginx-mod-http-lua) or variable (file read per handshake); empty: lua when the module is installed")
	fs.StringVar(&c.HostingMariaDBSocket, "hosting-mariadb-socket", c.HostingMariaDBSocket, "hosting role: MariaDB's unix socket (root logs in over it by unix_socket authentication)")
	fs.StringVar(&c.HostingSFTPHost, "hosting-sftp-host", c.HostingSFTPHost, "hosting role: the node's public host name (or IP address) customers connect to with SFTP, shown in each account's connection details; empty: the account's own domain (which works only once its DNS points at the node)")
	fs.IntVar(&c.HostingSFTPPort, "hosting-sftp-port", c.HostingSFTPPort, "hosting role: the port the node's sshd listens on for SFTP, shown in each account's connection details")
	fs.StringVar(&c.HostingSFTPGroup, "hosting-sftp-group", c.HostingSFTPGroup, "hosting role: the group of hosting users, chrooted to their home by HOSTING_ROOT/ssh/sftp.conf (include it from sshd_config)")
	fs.StringVar(&c.HostingFPMGlob, "hosting-fpm-glob", c.HostingFPMGlob, "hosting role: where the php-fpmX.Y binaries are; their versions are offered")
	fs.StringVar(&c.ConsoleListen, "console-listen", c.ConsoleListen, "browser console listener (HTTPS: noVNC and the WebSocket to guests' VNC displays, opened with single-use tokens from the coordinators); 0.0.0.0:8423 to serve browsers on other hosts, empty to turn it off")
	fs.IntVar(&c.ConsoleMaxPerServer, "console-max-per-server", c.ConsoleMaxPerServer, "how many browser consoles one server may have open at once (0: 4); more are refused with 429 until one closes")
	fs.StringVar(&c.ConsoleURL, "console-url", c.ConsoleURL, "base URL browsers reach the console listener at, e.g. https://hv-01.example.com:8423 (default https://<console-listen>, with the host name for a wildcard address)")
	fs.StringVar(&c.ConsoleTLSCert, "console-tls-cert", c.ConsoleTLSCert, "PEM certificate of the console listener (default: the node certificate from the coordinators' CA, which browsers do not trust by themselves)")
	fs.StringVar(&c.ConsoleTLSKey, "console-tls-key", c.ConsoleTLSKey, "PEM private key for console-tls-cert")
	fs.StringVar(&c.NoVNCDir, "novnc-dir", c.NoVNCDir, "directory of the noVNC client the console serves (Debian package novnc)")
	fs.StringVar(&c.Failpoint, "failpoint", c.Failpoint, "crash tests only: kill the process when an operation reaches this step (kind:step)")
}

// listValue is a comma-separated list flag.
type listValue []string

func (l *listValue) String() string {
	if l == nil {
		return ""
	}
	return strings.Join(*l, ",")
}

func (l *listValue) Set(v string) error {
	*l = conflayer.SplitList(v)
	return nil
}

// addListValue is a repeatable list flag: each Set adds its comma-separated
// items, once each.
type addListValue []string

func (l *addListValue) String() string { return (*listValue)(l).String() }

func (l *addListValue) Set(v string) error {
	for _, s := range conflayer.SplitList(v) {
		if !slices.Contains(*l, s) {
			*l = append(*l, s)
		}
	}
	return nil
}

// HasRole says whether the node has a role.
func (c *Config) HasRole(r string) bool { return slices.Contains(c.Roles, r) }

// Validate checks the configuration.
func (c *Config) Validate() error {
	var errs []error
	for k, v := range map[string]string{"data dir": c.DataDir, "socket": c.Socket, "libvirt socket": c.LibvirtSocket, "pool path": c.PoolPath, "emulator": c.Emulator} {
		if v == "" || !filepath.IsAbs(v) {
			errs = append(errs, fmt.Errorf("%s must be an absolute path, got %q", k, v))
		}
	}
	if c.PoolName == "" {
		errs = append(errs, errors.New("pool name is empty"))
	}
	switch c.DomainType {
	case "auto", "kvm", "qemu":
	default:
		errs = append(errs, fmt.Errorf("domain type %q must be auto, kvm or qemu", c.DomainType))
	}
	if c.StopGrace < 0 || c.StopGrace > time.Hour {
		errs = append(errs, fmt.Errorf("stop grace %s out of range 0-1h", c.StopGrace))
	}
	if c.StatsInterval < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("stats interval %s below 100ms", c.StatsInterval))
	}
	if c.StatsRing < 1 || c.StatsRing > 10000 {
		errs = append(errs, fmt.Errorf("stats ring %d out of range 1-10000", c.StatsRing))
	}
	if c.JournalRetention < time.Minute {
		errs = append(errs, fmt.Errorf("journal retention %s below 1m", c.JournalRetention))
	}
	if c.NodeID != "" {
		if err := validate.NodeID(c.NodeID); err != nil {
			errs = append(errs, fmt.Errorf("node-id: %s", validate.Reason(err)))
		}
	}
	if len(c.Roles) == 0 {
		errs = append(errs, errors.New("roles: at least one of kvm and hosting"))
	}
	for _, r := range c.Roles {
		if r != api.RoleKVM && r != api.RoleHosting {
			errs = append(errs, fmt.Errorf("roles: %q must be kvm or hosting", r))
		}
	}
	if c.HasRole(api.RoleHosting) && !filepath.IsAbs(c.HostingRoot) {
		errs = append(errs, fmt.Errorf("hosting-root must be an absolute path, got %q", c.HostingRoot))
	}
	if c.HostingSFTPHost != "" {
		if err := validate.PublicHost(c.HostingSFTPHost); err != nil {
			errs = append(errs, fmt.Errorf("hosting-sftp-host: %s", validate.Reason(err)))
		}
	}
	if c.HostingSFTPPort < 1 || c.HostingSFTPPort > 65535 {
		errs = append(errs, fmt.Errorf("hosting-sftp-port %d: want 1 to 65535", c.HostingSFTPPort))
	}
	for _, b := range c.Bridges {
		if err := validate.Bridge(b); err != nil {
			errs = append(errs, fmt.Errorf("bridge: %s", validate.Reason(err)))
		}
	}
	for _, a := range c.Coordinators {
		if _, _, err := net.SplitHostPort(a); err != nil {
			errs = append(errs, fmt.Errorf("coordinator address %q: %v", a, err))
		}
	}
	if c.ConsoleListen != "" {
		if _, _, err := net.SplitHostPort(c.ConsoleListen); err != nil {
			errs = append(errs, fmt.Errorf("console-listen %q: %v", c.ConsoleListen, err))
		}
	}
	if c.ConsoleMaxPerServer < 0 || c.ConsoleMaxPerServer > 1000 {
		errs = append(errs, fmt.Errorf("console-max-per-server %d: want 0 (the default, 4) to 1000", c.ConsoleMaxPerServer))
	}
	if c.ConsoleURL != "" {
		if u, err := url.Parse(c.ConsoleURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			errs = append(errs, fmt.Errorf("console-url %q: want https://host[:port]", c.ConsoleURL))
		}
	}
	if (c.ConsoleTLSCert == "") != (c.ConsoleTLSKey == "") {
		errs = append(errs, errors.New("console-tls-cert and console-tls-key go together"))
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log level %q must be debug, info, warn or error", c.LogLevel))
	}
	switch c.LogFormat {
	case "json", "text", "journal":
	default:
		errs = append(errs, fmt.Errorf("log format %q must be json, text or journal", c.LogFormat))
	}
	return errors.Join(errs...)
}
