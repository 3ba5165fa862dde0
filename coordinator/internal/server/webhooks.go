package server

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"sync"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/httpapi"
	"github.com/hostplane/hostplane/coordinator/internal/webhook"
	"github.com/hostplane/hostplane/internal/clock"
	"github.com/hostplane/hostplane/internal/consoletoken"
	"github.com/spf13/pflag"
)

// WebhookConfig holds the webhook dispatcher's settings.
type WebhookConfig struct {
	KEKFile         string
	Brand           string
	AllowHTTP       bool
	AllowPrivate    bool
	MaxPerAccount   int
	KeepAttempts    int
	AttemptTimeout  time.Duration
	PerWebhook      int
	MaxInFlight     int
	FlushInterval   time.Duration
	OutboxRetention time.Duration
	RetryInitial    time.Duration
	RetryMax        time.Duration
	RetryWindow     time.Duration

	// Set in code only (tests, benchmarks).
	Clock     clock.Clock               // default: the wall clock
	TLSConfig *tls.Config               // client TLS for deliveries (e.g. a test CA)
	Resolver  webhook.Resolver          // default: the system resolver
	Observe   func(webhook.AttemptInfo) // called after every attempt
	// WrapApply, if set, wraps how the dispatcher proposes its records
	// (fault injection: an apply that commits but answers an error).
	WrapApply func(webhook.Applier) webhook.Applier

	rt *webhookRuntime // made by validate; shared by the copies of this config
}

// webhookRuntime is what the coordinator builds from WebhookConfig once.
type webhookRuntime struct {
	once   sync.Once
	err    error
	sealer *webhook.Sealer
	guard  *webhook.Guard
	disp   *webhook.Dispatcher
	// console is the browser console's signing key, derived from the KEK.
	console ed25519.PrivateKey
	// consoleSeal is the key hpc2 console tokens' claims are sealed with,
	// derived from the KEK.
	consoleSeal []byte
}

func webhookDefaults() WebhookConfig {
	return WebhookConfig{
		MaxPerAccount: 20, KeepAttempts: 1000, AttemptTimeout: 10 * time.Second,
		PerWebhook: 4, MaxInFlight: 512, FlushInterval: 50 * time.Millisecond, OutboxRetention: 72 * time.Hour,
		RetryInitial: webhook.DefaultBackoff.Initial, RetryMax: webhook.DefaultBackoff.Max, RetryWindow: webhook.DefaultBackoff.Window,
	}
}

// fillDefaults gives every zero setting its default (cmp.Or: the first
// that is not zero).
func (c *WebhookConfig) fillDefaults() {
	d := webhookDefaults()
	c.MaxPerAccount = cmp.Or(c.MaxPerAccount, d.MaxPerAccount)
	c.KeepAttempts = cmp.Or(c.KeepAttempts, d.KeepAttempts)
	c.PerWebhook = cmp.Or(c.PerWebhook, d.PerWebhook)
	c.MaxInFlight = cmp.Or(c.MaxInFlight, d.MaxInFlight)
	c.AttemptTimeout = cmp.Or(c.AttemptTimeout, d.AttemptTimeout)
	c.FlushInterval = cmp.Or(c.FlushInterval, d.FlushInterval)
	c.OutboxRetention = cmp.Or(c.OutboxRetention, d.OutboxRetention)
	c.RetryInitial = cmp.Or(c.RetryInitial, d.RetryInitial)
	c.RetryMax = cmp.Or(c.RetryMax, d.RetryMax)
	c.RetryWindow = cmp.Or(c.RetryWindow, d.RetryWindow)
}

func bindWebhookFlags(fs *pflag.FlagSet, c *WebhookConfig) {
	// A Config built in code may leave Webhooks zero; fill it here so --help
	// shows the defaults (Defaults() sets them).
	c.fillDefaults()
	fs.StringVar(&c.KEKFile, "webhook-kek-file", c.KEKFile, "file with the 32-byte key-encryption key (64 hex characters) that seals webhook signing secrets (default <data-dir>/kek, generated with mode 0600 on first start if absent). Every coordinator of a cluster must be given the same file: copy it to each node before it joins")
	fs.StringVar(&c.Brand, "webhook-signature-brand", c.Brand, "brand in the webhook header names: X-<brand>-Signature, X-<brand>-Event, X-<brand>-Delivery (default: the --brand's, Sunucu or 444host)")
	fs.BoolVar(&c.AllowHTTP, "webhook-allow-http", c.AllowHTTP, "DEVELOPMENT ONLY: allow http:// webhook URLs")
	fs.BoolVar(&c.AllowPrivate, "webhook-allow-private", c.AllowPrivate, "DEVELOPMENT ONLY: allow webhook URLs on loopback, private (RFC 1918, CGNAT, ULA) and link-local addresses (metadata addresses stay refused)")
	fs.IntVar(&c.MaxPerAccount, "webhook-max-per-account", c.MaxPerAccount, "maximum webhook subscriptions per account")
	fs.IntVar(&c.KeepAttempts, "webhook-keep-attempts", c.KeepAttempts, "delivery-log entries (attempts) kept per subscription; older ones are pruned")
	fs.DurationVar(&c.AttemptTimeout, "webhook-attempt-timeout", c.AttemptTimeout, "a delivery attempt fails unless a 2xx arrives within this time")
	fs.IntVar(&c.PerWebhook, "webhook-concurrency-per-subscription", c.PerWebhook, "delivery attempts in flight per subscription, so one slow receiver cannot starve the others")
	fs.IntVar(&c.MaxInFlight, "webhook-max-in-flight", c.MaxInFlight, "delivery attempts in flight in total")
	fs.DurationVar(&c.FlushInterval, "webhook-flush-interval", c.FlushInterval, "how often the leader records batched delivery attempts through Raft")
	fs.DurationVar(&c.OutboxRetention, "webhook-outbox-retention", c.OutboxRetention, "how long handled events stay in the outbox before they are pruned")
	fs.DurationVar(&c.RetryInitial, "webhook-retry-initial", c.RetryInitial, "delay before the first retry; it doubles per failed attempt")
	fs.DurationVar(&c.RetryMax, "webhook-retry-max", c.RetryMax, "longest delay between retries")
	fs.DurationVar(&c.RetryWindow, "webhook-retry-window", c.RetryWindow, "a delivery is marked failed when its next retry would fall this long after its first attempt")
}

var brandRE = regexp.MustCompile(`^[A-Za-z0-9]{1,32}$`)

func (c *WebhookConfig) validate(dataDir string) error {
	c.fillDefaults() // zero fields (a Config built in code) take the defaults
	var errs []error
	if c.KEKFile == "" && dataDir != "" {
		c.KEKFile = filepath.Join(dataDir, "kek")
	}
	if !brandRE.MatchString(c.Brand) {
		errs = append(errs, fmt.Errorf("webhook-signature-brand %q: 1-32 letters and digits", c.Brand))
	}
	for name, v := range map[string]int{
		"webhook-max-per-account": c.MaxPerAccount, "webhook-keep-attempts": c.KeepAttempts,
		"webhook-concurrency-per-subscription": c.PerWebhook, "webhook-max-in-flight": c.MaxInFlight,
	} {
		if v < 1 {
			errs = append(errs, fmt.Errorf("%s must be at least 1", name))
		}
	}
	for name, v := range map[string]time.Duration{
		"webhook-attempt-timeout": c.AttemptTimeout, "webhook-flush-interval": c.FlushInterval,
		"webhook-outbox-retention": c.OutboxRetention, "webhook-retry-initial": c.RetryInitial,
		"webhook-retry-max": c.RetryMax, "webhook-retry-window": c.RetryWindow,
	} {
		if v <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive", name))
		}
	}
	if c.RetryMax < c.RetryInitial {
		errs = append(errs, errors.New("webhook-retry-max must be at least webhook-retry-initial"))
	}
	c.rt = &webhookRuntime{}
	return errors.Join(errs...)
}

// initWebhooks loads (or on first start creates) the KEK and installs the
// webhook routes' dependencies. It runs once per start; later calls return the
// first result.
func (s *Server) initWebhooks() error {
	c := &s.cfg.Webhooks
	if c.rt == nil {
		return errors.New("webhooks: config was not validated")
	}
	rt := c.rt
	rt.once.Do(func() {
		create := c.KEKFile == filepath.Join(s.cfg.DataDir, "kek")
		kek, err := webhook.LoadOrCreateKEK(c.KEKFile, create)
		if err != nil {
			rt.err = err
			return
		}
		if rt.sealer, err = webhook.NewSealer(kek); err != nil {
			rt.err = err
			return
		}
		if rt.console, err = consoletoken.DeriveKey(kek); err != nil {
			rt.err = err
			return
		}
		if rt.consoleSeal, err = consoletoken.DeriveSealKey(kek); err != nil {
			rt.err = err
			return
		}
		rt.guard = &webhook.Guard{AllowHTTP: c.AllowHTTP, AllowPrivate: c.AllowPrivate, Resolver: c.Resolver}
		if c.AllowHTTP || c.AllowPrivate {
			s.log.Warn("webhook URL checks relaxed for development", "allow_http", c.AllowHTTP, "allow_private", c.AllowPrivate)
		}
		s.API.SetWebhookDeps(&httpapi.WebhookDeps{Sealer: rt.sealer, Guard: rt.guard, MaxPerAccount: c.MaxPerAccount,
			Fetch:          rt.guard.Client(5*time.Second, c.TLSConfig, 4),
			HoldDeliveries: func(timeout time.Duration) (func(), error) { return rt.disp.HoldWithin(timeout) }})
		client := rt.guard.Client(c.AttemptTimeout, c.TLSConfig, c.MaxInFlight)
		apply := webhook.Applier(s.API.Apply)
		if c.WrapApply != nil {
			apply = c.WrapApply(apply)
		}
		rt.disp = webhook.New(webhook.Options{
			Brand: c.Brand, Dialect: s.brand(), AttemptTimeout: c.AttemptTimeout,
			Backoff:    webhook.Backoff{Initial: c.RetryInitial, Max: c.RetryMax, Window: c.RetryWindow, Jitter: webhook.DefaultBackoff.Jitter},
			PerWebhook: c.PerWebhook, MaxInFlight: c.MaxInFlight, FlushInterval: c.FlushInterval, Keep: c.KeepAttempts,
			OutboxRetention: c.OutboxRetention,
		}, s.Node.FSM, apply, rt.sealer, client, c.Clock, s.log.With("component", "webhooks"))
		rt.disp.Observe = c.Observe
	})
	return rt.err
}

// WebhookDispatcher returns the dispatcher (nil if the KEK cannot be loaded).
func (s *Server) WebhookDispatcher() *webhook.Dispatcher {
	if s.initWebhooks() != nil {
		return nil
	}
	return s.cfg.Webhooks.rt.disp
}

// webhookJobs are the leader-only loops of the webhook dispatcher.
func (s *Server) webhookJobs() []func(ctx context.Context) {
	if err := s.initWebhooks(); err != nil {
		s.log.Error("webhooks disabled: cannot load the key-encryption key", "err", err)
		return nil
	}
	disp := s.cfg.Webhooks.rt.disp
	return []func(ctx context.Context){
		func(ctx context.Context) {
			if err := disp.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
				s.log.Error("webhook dispatcher stopped", "err", err)
			}
		},
	}
}
