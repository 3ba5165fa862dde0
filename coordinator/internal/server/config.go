package server

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/httpapi"
	"github.com/hostplane/hostplane/coordinator/internal/mcpserver"
	"github.com/hostplane/hostplane/internal/conflayer"
	"github.com/hostplane/hostplane/pkg/brand"
	"github.com/hostplane/hostplane/pkg/client"
	"github.com/hostplane/hostplane/pkg/validate"
	"github.com/spf13/pflag"
)

// EnvPrefix starts the coordinator's environment variables (HOSTPLANE_API_ADDR).
const EnvPrefix = "HOSTPLANE_"

// Config is the coordinator's configuration. It is layered defaults → config file
// (JSON, keys are flag names) → HOSTPLANE_* environment → flags, then validated.
type Config struct {
	NodeID            string
	DataDir           string
	APIAddr           string
	APIAdvertise      string
	RaftAddr          string
	RaftAdvertise     string
	Bootstrap         bool
	BootstrapAccount  bool
	BootstrapEmail    string
	AdminSocket       string
	ClusterSecret     string
	ClusterSecretFile string
	RaftTLSCert       string
	RaftTLSKey        string
	RaftTLSCA         string
	// Brand is the public dialect: sunucu (default) or 444host. It sets the
	// defaults of KeyPrefix and Webhooks.Brand; every coordinator of a
	// cluster must be given the same.
	Brand       string
	KeyPrefix   string
	RateLimit   int
	IPRateLimit int
	// TrustedProxies (--trusted-proxies, comma-separated CIDRs): the
	// reverse proxies / load balancers in front of the API, whose
	// X-Forwarded-For names the client; Validate parses them into
	// TrustedProxyList. Empty: the TCP peer is the client.
	TrustedProxies    string
	TrustedProxyList  []netip.Prefix
	LogLevel          string
	LogFormat         string
	HeartbeatTimeout  time.Duration
	ElectionTimeout   time.Duration
	SnapshotThreshold uint64
	UsageFlush        time.Duration
	IdempotencyTTL    time.Duration
	IdempotencySweep  time.Duration
	PprofAddr         string
	MetricsAddr       string
	HTTP              httpapi.Timeouts
	Webhooks          WebhookConfig
	Nodes             NodeConfig
	RDNS              RDNSConfig
	ACME              ACMEConfig
	Renewals          RenewalConfig
	DomainReg         DomainRegConfig
	// PublicURL is the base URL clients reach the API at (the OAuth issuer;
	// tokens are bound to it). Empty: http://<api address>.
	PublicURL string
	// Clock, when set, replaces the wall clock of the API's requests (the
	// command times the FSM computes expiries from). Tests only.
	Clock func() time.Time
	// TestClockFile (hidden flag --test-clock-file, tests only, refused
	// without HOSTPLANE_TEST_CLOCK_OPT_IN) sets Clock to the wall clock
	// moved by the duration the file holds.
	TestClockFile string
	// TestMaxLevel (hidden flag --test-max-semantics-level, tests only) makes
	// this coordinator apply semantics levels up to it only, as an older
	// release would: rolling-upgrade tests with one build.
	TestMaxLevel uint16
	// Tuning goes to httpapi.Config as it is: OAuthPollInterval (tests
	// only), DNSResolver and DNSNSPort (--dns-resolver, --dns-ns-port), the
	// stats caps (--stats-streams-per-account, --stats-streams-per-ip,
	// --stats-calls-per-node).
	httpapi.Tuning
	// MCPStreamsPerAccount, MCPStreamsPerIP, MCPStreams, MCPStreamIdle: the
	// /mcp GET stream limits (mcpserver.HTTPOptions).
	MCPStreamsPerAccount int
	MCPStreamsPerIP      int
	MCPStreams           int
	MCPStreamIdle        time.Duration
	// MCPSessionsPerAccount: the /mcp sessions one account holds at once
	// at this coordinator (mcpserver.sessionCap).
	MCPSessionsPerAccount int
	// ReservedDomains (--reserved-domains, comma-separated) are the
	// provider's own names a customer cannot take as a hosting or custom
	// domain, each with its subdomains; Validate puts them in
	// httpapi.ReservedDomain's form into ReservedList. Per coordinator:
	// give every coordinator the same.
	ReservedDomains string
	ReservedList    []string
}

// DefaultDataDir is where the embedded default keeps its data (see client.DefaultDataDir).
func DefaultDataDir() string { return client.DefaultDataDir() }

// Defaults returns the embedded single-node default.
func Defaults() Config {
	host, _ := os.Hostname()
	id := sanitizeID(host)
	if id == "" {
		id = "node1"
	}
	return Config{
		NodeID: id, DataDir: DefaultDataDir(), APIAddr: "127.0.0.1:8420", RaftAddr: "127.0.0.1:8421",
		Bootstrap: true, BootstrapAccount: true, BootstrapEmail: "admin@localhost",
		Brand: brand.Default, RateLimit: 120, IPRateLimit: httpapi.DefaultIPRateLimit, Tuning: httpapi.Tuning{StatsStreamsPerAccount: httpapi.DefaultStatsStreamsPerAccount, StatsStreamsPerIP: httpapi.DefaultStatsStreamsPerIP, StatsCallsPerNode: httpapi.DefaultStatsCallsPerNode},
		MCPStreamsPerAccount: mcpserver.DefaultStreamsPerAccount, MCPStreamsPerIP: mcpserver.DefaultStreamsPerIP, MCPStreams: mcpserver.DefaultStreams, MCPStreamIdle: mcpserver.DefaultStreamIdle, MCPSessionsPerAccount: mcpserver.DefaultSessionsPerAccount, LogLevel: "info", LogFormat: "json",
		HeartbeatTimeout: time.Second, ElectionTimeout: time.Second, SnapshotThreshold: 8192,
		UsageFlush: 2 * time.Second, IdempotencyTTL: 24 * time.Hour, IdempotencySweep: 10 * time.Minute, MetricsAddr: "127.0.0.1:8429", HTTP: httpapi.DefaultTimeouts(), Webhooks: webhookDefaults(),
		RDNS:      rdnsDefaults(),
		ACME:      acmeDefaults(),
		Renewals:  renewalDefaults(),
		DomainReg: domainRegDefaults(),
	}
}

func sanitizeID(s string) string {
	var b strings.Builder
	for _, c := range strings.ToLower(s) {
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' {
			b.WriteRune(c)
		}
	}
	out := b.String()
	if len(out) > 64 {
		out = out[:64]
	}
	return out
}

// BindFlags registers every setting as a flag bound to c.
func BindFlags(fs *pflag.FlagSet, c *Config) {
	fs.StringVar(&c.NodeID, "node-id", c.NodeID, "this coordinator's Raft server id (a-z0-9._-)")
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "directory for the Raft state (raft/: raft-wal/, fsm.db, snapshots/) and the admin socket")
	fs.StringVar(&c.APIAddr, "api-addr", c.APIAddr, "listen address of the public API (/v1, /healthz, /readyz, /openapi.json)")
	fs.StringVar(&c.APIAdvertise, "api-advertise", c.APIAdvertise, "API address other coordinators forward to (default: the bound api-addr)")
	fs.StringVar(&c.RaftAddr, "raft-addr", c.RaftAddr, "listen address for Raft traffic")
	fs.StringVar(&c.RaftAdvertise, "raft-advertise", c.RaftAdvertise, "Raft address peers dial (default: the bound raft-addr)")
	fs.BoolVar(&c.Bootstrap, "bootstrap", c.Bootstrap, "form a single-node cluster when the data directory has no Raft state (false for nodes that will be joined)")
	fs.BoolVar(&c.BootstrapAccount, "bootstrap-account", c.BootstrapAccount, "on the first start of a bootstrapped cluster, create an account and print its API key once")
	fs.StringVar(&c.BootstrapEmail, "bootstrap-email", c.BootstrapEmail, "email of the bootstrap account")
	fs.StringVar(&c.AdminSocket, "admin-socket", c.AdminSocket, "unix socket of the admin API (default: <data-dir>/admin.sock)")
	fs.StringVar(&c.ClusterSecret, "cluster-secret", c.ClusterSecret, "secret shared by coordinators to forward admin requests and client IPs (prefer the env var or --cluster-secret-file)")
	fs.StringVar(&c.ClusterSecretFile, "cluster-secret-file", c.ClusterSecretFile, "file holding the cluster secret")
	fs.StringVar(&c.RaftTLSCert, "raft-tls-cert", c.RaftTLSCert, "PEM certificate for mutual TLS between coordinators (with --raft-tls-key and --raft-tls-ca)")
	fs.StringVar(&c.RaftTLSKey, "raft-tls-key", c.RaftTLSKey, "PEM private key for Raft TLS")
	fs.StringVar(&c.RaftTLSCA, "raft-tls-ca", c.RaftTLSCA, "PEM CA that signs every coordinator's Raft certificate")
	fs.StringVar(&c.Brand, "brand", c.Brand, "public dialect: "+strings.Join(brand.Names(), " or ")+" (paths, scopes, key and token prefixes, webhook events, payload fields and headers, /openapi.json, MCP tool names); the same on every coordinator of a cluster")
	fs.StringVar(&c.KeyPrefix, "key-prefix", c.KeyPrefix, "prefix of minted API keys (default: the brand's, snc_ or h444_)")
	fs.StringVar(&c.DNSResolver, "dns-resolver", c.DNSResolver, "recursive DNS resolver (host:port) custom-domain verification finds a domain's authoritative nameservers through; the records are then read from those (default 127.0.0.1:53)")
	fs.StringVar(&c.DNSNSPort, "dns-ns-port", c.DNSNSPort, "port the authoritative nameservers are asked on during custom-domain verification (default 53; for test setups)")
	fs.StringVar(&c.PublicURL, "public-url", c.PublicURL, "base URL clients reach the API at, e.g. https://api.example.com: the OAuth issuer and the audience of its tokens; the same on every coordinator (default: http://<api-addr>)")
	fs.StringVar(&c.ReservedDomains, "reserved-domains", c.ReservedDomains, "comma-separated domains of the provider (brand, API, panel names), each with all its subdomains, that customers cannot order hosting on or set as a custom domain (409 domain_reserved); every enrolled node's hostname is always reserved; the operator's hosting create is not refused; give every coordinator the same list")
	fs.IntVar(&c.RateLimit, "rate-limit", c.RateLimit, "default requests per minute per API key")
	fs.IntVar(&c.IPRateLimit, "ip-rate-limit", c.IPRateLimit, "requests per minute one client address (an IPv6 /64) may make to /v1, /openapi.json and /mcp without a valid API key or token (none, or an invalid, revoked, expired or not-allowed-here one; GET /v1/scopes), counted by each coordinator for what it answers; more are 429 rate_limited")
	fs.StringVar(&c.TrustedProxies, "trusted-proxies", c.TrustedProxies, "comma-separated CIDRs of the reverse proxies / load balancers in front of the API: a request whose TCP peer is in one has its client address (key allow-lists, usage, last_used_ip, the --ip-rate-limit budget) taken from X-Forwarded-For, the rightmost address not itself in the list; Forwarded (RFC 7239) is not read; a peer outside the list is the client whatever it sends (default: none); give every coordinator the same list")
	fs.IntVar(&c.StatsStreamsPerAccount, "stats-streams-per-account", c.StatsStreamsPerAccount, "stats streams (GET /v1/servers/:id/stats?stream=1) one account may hold open at once; more are refused with 429 too_many_streams")
	fs.IntVar(&c.StatsStreamsPerIP, "stats-streams-per-ip", c.StatsStreamsPerIP, "stats streams (GET /v1/servers/:id/stats?stream=1) one client address (an IPv6 /64; behind a load balancer see --trusted-proxies) may hold open at once, whatever the accounts; more are refused with 429 too_many_streams")
	fs.IntVar(&c.StatsCallsPerNode, "stats-calls-per-node", c.StatsCallsPerNode, "stats calls (one-shot and streams) open to one node's agent at once, each holding one of the 256 streams its session takes (actions need the rest); more are refused with 503 node_busy")
	fs.IntVar(&c.MCPStreamsPerAccount, "mcp-streams-per-account", c.MCPStreamsPerAccount, "MCP session streams (GET /mcp, one per session) one account may hold open at once at this coordinator; more are refused with 429 too_many_streams and Retry-After")
	fs.IntVar(&c.MCPStreamsPerIP, "mcp-streams-per-ip", c.MCPStreamsPerIP, "MCP session streams (GET /mcp) one client address (an IPv6 /64; behind a load balancer see --trusted-proxies) may hold open at once at this coordinator, whatever the accounts; more are refused with 429 too_many_streams and Retry-After")
	fs.IntVar(&c.MCPStreams, "mcp-streams", c.MCPStreams, "MCP session streams (GET /mcp) this coordinator holds open at once, all accounts together; more are refused with 503 too_many_streams and Retry-After (tool calls are not affected)")
	fs.IntVar(&c.MCPSessionsPerAccount, "mcp-sessions-per-account", c.MCPSessionsPerAccount, "MCP sessions one account may hold at once at this coordinator; one more ends the account's session used least recently that has no request running (its id then answers 404 and its client initializes again), or, when every one has a request running, is refused with a JSON-RPC error too_many_sessions")
	fs.DurationVar(&c.MCPStreamIdle, "mcp-stream-idle", c.MCPStreamIdle, "how long an MCP session that opened a stream (GET /mcp) lives on once its stream has closed and no request of it runs; then it is ended (404 to its id; the client initializes again)")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "json or text on stdout, or journal (native journald entries with one field per attribute: REQUEST_ID, ACTION_ID, NODE_ID…)")
	fs.DurationVar(&c.HeartbeatTimeout, "raft-heartbeat-timeout", c.HeartbeatTimeout, "Raft heartbeat timeout")
	fs.DurationVar(&c.ElectionTimeout, "raft-election-timeout", c.ElectionTimeout, "Raft election timeout")
	fs.Uint64Var(&c.SnapshotThreshold, "raft-snapshot-threshold", c.SnapshotThreshold, "log entries between Raft snapshots")
	fs.DurationVar(&c.UsageFlush, "usage-flush-interval", c.UsageFlush, "how often the leader writes batched API-key usage through Raft")
	fs.DurationVar(&c.IdempotencyTTL, "idempotency-ttl", c.IdempotencyTTL, "how long an Idempotency-Key's response is kept and replayed")
	fs.DurationVar(&c.IdempotencySweep, "idempotency-sweep-interval", c.IdempotencySweep, "how often the leader removes expired idempotency records through Raft")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", c.MetricsAddr, "listen address of Prometheus /metrics, apart from the public API (empty = off); give each coordinator on one host its own")
	fs.StringVar(&c.PprofAddr, "pprof-addr", c.PprofAddr, "serve net/http/pprof on this address (loopback only; empty = off)")
	fs.DurationVar(&c.HTTP.ReadHeader, "http-header-timeout", c.HTTP.ReadHeader, "a client must send a request's line and headers within this time, or the connection is closed (API and admin listeners)")
	fs.DurationVar(&c.HTTP.Body, "http-body-timeout", c.HTTP.Body, "a client must send a request's whole body within this time after its headers, or it gets a 408 and the connection is closed")
	fs.DurationVar(&c.HTTP.Write, "http-write-timeout", c.HTTP.Write, "a response must be written within this time after the body was due (headers + http-body-timeout); a stream: each event")
	fs.DurationVar(&c.HTTP.Idle, "http-idle-timeout", c.HTTP.Idle, "a keep-alive connection with no request is closed after this time")
	fs.IntVar(&c.HTTP.MaxHeaderBytes, "http-max-header-bytes", c.HTTP.MaxHeaderBytes, "largest request line and headers accepted (a JSON 431 beyond; net/http cuts the connection at twice this, at least 64 KiB more)")
	bindWebhookFlags(fs, &c.Webhooks)
	bindNodeFlags(fs, &c.Nodes)
	bindRDNSFlags(fs, &c.RDNS)
	bindACMEFlags(fs, &c.ACME)
	bindRenewalFlags(fs, &c.Renewals)
	bindDomainRegFlags(fs, &c.DomainReg)
	fs.StringVar(&c.TestClockFile, "test-clock-file", c.TestClockFile, "TESTS ONLY (needs "+TestClockOptIn+"="+TestClockOptInValue+"): move this coordinator's clock by the duration the file holds, read again when it changes")
	_ = fs.MarkHidden("test-clock-file")
	fs.Uint16Var(&c.TestMaxLevel, "test-max-semantics-level", c.TestMaxLevel, "TESTS ONLY: apply semantics levels up to this one only, as an older release would")
	_ = fs.MarkHidden("test-max-semantics-level")
}

// Load layers the config file named by --config, the environment and the flags
// the user set explicitly over the defaults (conflayer: file keys are flag
// names, variables are HOSTPLANE_<FLAG_NAME>). fs must have been parsed.
func Load(fs *pflag.FlagSet, configFile string) (Config, error) {
	cfg := Defaults()
	layer := pflag.NewFlagSet("layer", pflag.ContinueOnError)
	BindFlags(layer, &cfg)
	err := conflayer.Load(conflayer.Pflag(layer), conflayer.Layers{
		File: configFile, EnvPrefix: EnvPrefix, CommandLine: conflayer.PflagVisited(fs),
	})
	return cfg, err
}

// Validate checks the configuration and fills derived defaults.
func (c *Config) Validate() error {
	var errs []error
	if validate.CoordinatorID(c.NodeID) != nil {
		errs = append(errs, fmt.Errorf("node-id %q: use 1-64 characters of a-z, 0-9, '.', '_' and '-'", c.NodeID))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("data-dir is required"))
	}
	for name, addr := range map[string]string{"api-addr": c.APIAddr, "raft-addr": c.RaftAddr} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			errs = append(errs, fmt.Errorf("%s %q: %v", name, addr, err))
		}
	}
	tls := 0
	for _, f := range []string{c.RaftTLSCert, c.RaftTLSKey, c.RaftTLSCA} {
		if f != "" {
			tls++
		}
	}
	if tls != 0 && tls != 3 {
		errs = append(errs, errors.New("raft-tls-cert, raft-tls-key and raft-tls-ca go together"))
	}
	b, err := brand.Get(c.Brand)
	if err != nil {
		errs = append(errs, err)
		b = brand.MustGet(brand.Default)
	}
	c.Brand = b.Name
	if c.KeyPrefix == "" {
		c.KeyPrefix = b.KeyPrefix
	}
	if c.Webhooks.Brand == "" {
		c.Webhooks.Brand = b.Header
	}
	if c.KeyPrefix == "" || len(c.KeyPrefix) > 16 || !strings.HasSuffix(c.KeyPrefix, "_") {
		errs = append(errs, fmt.Errorf("key-prefix %q: 1-16 characters ending in '_'", c.KeyPrefix))
	}
	if c.PublicURL != "" {
		if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || strings.TrimSuffix(u.Path, "/") != "" {
			errs = append(errs, fmt.Errorf("public-url %q: an http(s) URL with a host and no path, query or fragment", c.PublicURL))
		}
	}
	c.ReservedList = nil
	for _, d := range conflayer.SplitList(c.ReservedDomains) {
		ascii, err := httpapi.ReservedDomain(d)
		if err != nil {
			errs = append(errs, fmt.Errorf("reserved-domains: %s", validate.Reason(err)))
			continue
		}
		c.ReservedList = append(c.ReservedList, ascii)
	}
	c.TrustedProxyList = nil
	if pl, err := httpapi.ParseTrustedProxies(conflayer.SplitList(c.TrustedProxies)); err != nil {
		errs = append(errs, err)
	} else {
		c.TrustedProxyList = pl
	}
	if c.RateLimit < 1 {
		errs = append(errs, errors.New("rate-limit must be at least 1"))
	}
	if c.IPRateLimit < 1 {
		errs = append(errs, errors.New("ip-rate-limit must be at least 1"))
	}
	if c.StatsStreamsPerAccount < 1 {
		errs = append(errs, errors.New("stats-streams-per-account must be at least 1"))
	}
	if c.StatsStreamsPerIP < 1 {
		errs = append(errs, errors.New("stats-streams-per-ip must be at least 1"))
	}
	if c.MCPStreamsPerAccount < 1 || c.MCPStreams < 1 {
		errs = append(errs, errors.New("mcp-streams-per-account and mcp-streams must be at least 1"))
	}
	if c.MCPStreamsPerIP < 1 {
		errs = append(errs, errors.New("mcp-streams-per-ip must be at least 1"))
	}
	if c.MCPSessionsPerAccount < 1 {
		errs = append(errs, errors.New("mcp-sessions-per-account must be at least 1"))
	}
	if c.MCPStreamIdle < time.Second {
		errs = append(errs, errors.New("mcp-stream-idle must be at least 1s"))
	}
	if c.StatsCallsPerNode < 1 || c.StatsCallsPerNode > 224 {
		errs = append(errs, errors.New("stats-calls-per-node must be from 1 to 224 (the agent takes 256 streams per session; at least 32 stay for actions)"))
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log-level %q: debug, info, warn or error", c.LogLevel))
	}
	if c.LogFormat != "json" && c.LogFormat != "text" && c.LogFormat != "journal" {
		errs = append(errs, fmt.Errorf("log-format %q: json, text or journal", c.LogFormat))
	}
	if c.PprofAddr != "" {
		host, _, err := net.SplitHostPort(c.PprofAddr)
		if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
			errs = append(errs, fmt.Errorf("pprof-addr %q: must be a loopback host:port", c.PprofAddr))
		}
	}
	if c.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			errs = append(errs, fmt.Errorf("metrics-addr %q: %v (empty turns /metrics off)", c.MetricsAddr, err))
		}
	}
	if c.ClusterSecretFile != "" {
		raw, err := os.ReadFile(c.ClusterSecretFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("cluster-secret-file: %w", err))
		} else {
			c.ClusterSecret = strings.TrimSpace(string(raw))
		}
	}
	if c.ClusterSecret != "" && len(c.ClusterSecret) < 16 {
		errs = append(errs, errors.New("cluster secret must be at least 16 characters"))
	}
	if c.AdminSocket == "" {
		c.AdminSocket = filepath.Join(c.DataDir, "admin.sock")
	}
	if c.IdempotencyTTL < time.Second || c.IdempotencySweep < 100*time.Millisecond {
		errs = append(errs, errors.New("idempotency-ttl must be at least 1s and idempotency-sweep-interval at least 100ms"))
	}
	for name, d := range map[string]time.Duration{"http-header-timeout": c.HTTP.ReadHeader, "http-body-timeout": c.HTTP.Body, "http-write-timeout": c.HTTP.Write, "http-idle-timeout": c.HTTP.Idle} {
		if d < 100*time.Millisecond || d > time.Hour {
			errs = append(errs, fmt.Errorf("%s %s: must be from 100ms to 1h", name, d))
		}
	}
	if c.HTTP.MaxHeaderBytes < 4<<10 || c.HTTP.MaxHeaderBytes > 1<<20 {
		errs = append(errs, fmt.Errorf("http-max-header-bytes %d: must be from 4096 to 1048576", c.HTTP.MaxHeaderBytes))
	}
	if c.UsageFlush <= 0 {
		c.UsageFlush = 2 * time.Second
	}
	if err := c.Webhooks.validate(c.DataDir); err != nil {
		errs = append(errs, err)
	}
	if err := c.Nodes.validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.RDNS.validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.ACME.validate(); err != nil {
		errs = append(errs, err)
	}
	if c.TestClockFile != "" {
		if tc, err := newTestClock(c.TestClockFile); err != nil {
			errs = append(errs, err)
		} else if c.Clock == nil {
			c.Clock = tc.Now
		}
	}
	if err := c.Renewals.validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.DomainReg.validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// secretLine reads the secret (what: "password", "key") that the file of
// flag holds on one line; flag is required with the flag named by with.
func secretLine(file, flag, with, what string) (string, error) {
	if file == "" {
		return "", fmt.Errorf("%s is required with %s", flag, with)
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("%s: %w", flag, err)
	}
	s := strings.TrimSpace(string(raw))
	if s == "" || strings.ContainsAny(s, "\r\n") {
		return "", fmt.Errorf("%s: the file must hold the %s on one line", flag, what)
	}
	return s, nil
}
