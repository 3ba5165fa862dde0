package server

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/rdns"
	"github.com/hostplane/hostplane/coordinator/internal/rdns/reconcile"
	"github.com/spf13/pflag"
)

// RDNSConfig is how the leader reaches PowerDNS Authoritative to serve the
// PTR names of servers' addresses in the mapped reverse zones.
type RDNSConfig struct {
	// APIURL is PowerDNS's webserver URL (http://127.0.0.1:8081); empty:
	// no PowerDNS, PTR names are only recorded.
	APIURL string
	// APIKeyFile holds the API key (it is read at start, sent only in
	// X-API-Key and never logged or written to Raft).
	APIKeyFile string
	ServerID   string
	// Nameservers is a comma-separated list of the NS names of the zones
	// hostplane creates.
	Nameservers string
	TTL         int
	// Resync: a full pass this often even with no change (repairs zones
	// edited or lost behind hostplane's back).
	Resync time.Duration
	// RetryMax bounds the back-off while PowerDNS cannot be reached.
	RetryMax time.Duration
	// Account is the PowerDNS account of this cluster's zones: a full pass
	// deletes the unmapped reverse zones of this account, so clusters that
	// share one PowerDNS each need their own. Empty (the default): zones
	// carry no account and nothing unmapped is deleted.
	Account string

	// Set in code only (tests).
	RetryInitial time.Duration

	key string
}

func rdnsDefaults() RDNSConfig {
	return RDNSConfig{ServerID: "localhost", TTL: 3600, Resync: 5 * time.Minute, RetryMax: 30 * time.Second}
}

func bindRDNSFlags(fs *pflag.FlagSet, c *RDNSConfig) {
	c.fillDefaults() // so --help shows the defaults
	fs.StringVar(&c.APIURL, "pdns-api-url", c.APIURL, "URL of the PowerDNS Authoritative webserver whose HTTP API serves the PTR names of mapped reverse zones, e.g. http://127.0.0.1:8081 (empty: PTR names are only recorded)")
	fs.StringVar(&c.APIKeyFile, "pdns-api-key-file", c.APIKeyFile, "file holding the PowerDNS API key (required with --pdns-api-url)")
	fs.StringVar(&c.ServerID, "pdns-server-id", c.ServerID, "PowerDNS server id in the API's paths")
	fs.StringVar(&c.Nameservers, "pdns-nameservers", c.Nameservers, "NS names of the reverse zones hostplane creates in PowerDNS, e.g. ns1.example.com,ns2.example.com (required with --pdns-api-url)")
	fs.IntVar(&c.TTL, "pdns-ptr-ttl", c.TTL, "TTL in seconds of the PTR records")
	fs.DurationVar(&c.Resync, "pdns-resync-interval", c.Resync, "the leader compares every mapped zone with PowerDNS this often even when nothing changed")
	fs.StringVar(&c.Account, "pdns-account", c.Account, "PowerDNS account the reverse zones of this cluster carry; when set, the leader's full pass also deletes the reverse zones of this account the state no longer maps (those only a state a cluster restore replaced held), so each cluster that shares a PowerDNS needs its own account (letters, digits, '.', '_', '-'; at most 40). Empty: zones carry no account and nothing unmapped is deleted")
	fs.DurationVar(&c.RetryMax, "pdns-retry-max", c.RetryMax, "longest wait between attempts while PowerDNS cannot be reached")
}

// fillDefaults gives every zero setting its default (cmp.Or: the first that
// is not zero; a negative one is kept, for validate to refuse): before the
// flags are bound and in validate (a Config built in code).
func (c *RDNSConfig) fillDefaults() {
	d := rdnsDefaults()
	c.ServerID = cmp.Or(c.ServerID, d.ServerID)
	c.TTL = cmp.Or(c.TTL, d.TTL)
	c.Resync = cmp.Or(c.Resync, d.Resync)
	c.RetryMax = cmp.Or(c.RetryMax, d.RetryMax)
}

func (c *RDNSConfig) validate() error {
	c.fillDefaults()
	c.RetryInitial = cmp.Or(c.RetryInitial, 500*time.Millisecond)
	if c.APIURL == "" {
		return nil
	}
	var errs []error
	if u, err := url.Parse(c.APIURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		errs = append(errs, fmt.Errorf("pdns-api-url %q: must be an http(s) URL without credentials", c.APIURL))
	}
	var err error
	if c.key, err = secretLine(c.APIKeyFile, "pdns-api-key-file", "pdns-api-url", "key"); err != nil {
		errs = append(errs, err)
	}
	if len(c.nameservers()) == 0 {
		errs = append(errs, errors.New("pdns-nameservers is required with pdns-api-url"))
	}
	for _, ns := range c.nameservers() {
		if rdns.ValidTarget(strings.TrimSuffix(ns, ".")) != nil {
			errs = append(errs, fmt.Errorf("pdns-nameservers: %q is not a fully qualified host name", ns))
		}
	}
	for _, r := range c.ServerID {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			errs = append(errs, fmt.Errorf("pdns-server-id %q: letters, digits, '.', '_' and '-' only", c.ServerID))
			break
		}
	}
	if err := rdns.ValidAccount(c.Account); c.Account != "" && err != nil {
		errs = append(errs, fmt.Errorf("pdns-account: %w", err))
	}
	if c.TTL < 1 || c.TTL > 604800 {
		errs = append(errs, fmt.Errorf("pdns-ptr-ttl %d: from 1 to 604800", c.TTL))
	}
	if c.Resync < time.Second || c.RetryMax < 100*time.Millisecond {
		errs = append(errs, errors.New("pdns-resync-interval must be at least 1s and pdns-retry-max at least 100ms"))
	}
	return errors.Join(errs...)
}

func (c *RDNSConfig) nameservers() []string {
	var out []string
	for _, ns := range strings.Split(c.Nameservers, ",") {
		if ns = strings.TrimSpace(ns); ns != "" {
			out = append(out, ns)
		}
	}
	return out
}

// rdnsJobs is the leader's PowerDNS reconciler. Without --pdns-api-url the
// names are only recorded; an unmapped zone then has nothing to delete in
// PowerDNS and its entry is dropped at once.
func (s *Server) rdnsJobs() []func(ctx context.Context) {
	c := s.cfg.RDNS
	log := s.log.With("component", "rdns")
	if c.APIURL == "" {
		return []func(ctx context.Context){func(ctx context.Context) { reconcile.DropRemoved(ctx, s.Node.FSM, s.API.Apply, log) }}
	}
	client := &rdns.Client{BaseURL: c.APIURL, ServerID: c.ServerID, Key: c.key, Account: c.Account, HTTP: &http.Client{Timeout: 15 * time.Second}}
	r := reconcile.New(client, reconcile.Config{Nameservers: c.nameservers(), TTL: c.TTL, Resync: c.Resync,
		RetryInitial: c.RetryInitial, RetryMax: c.RetryMax, Now: s.API.Now}, s.Node.FSM, s.API.Apply, s.rdnsMet, log)
	return []func(ctx context.Context){r.Run}
}
