package server

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// loadConfig layers the settings as the coordinator's start does: defaults,
// then file (when not ""), the HOSTPLANE_ environment, then args as flags.
// Flags that do not parse fail t; Load's error is returned.
func loadConfig(t *testing.T, file string, args ...string) (Config, error) {
	t.Helper()
	cfg := Defaults()
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	BindFlags(fs, &cfg)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return Load(fs, file)
}

// validConfig is loadConfig's settings without flags, which must load and
// validate.
func validConfig(t *testing.T, file string) Config {
	t.Helper()
	got, err := loadConfig(t, file)
	if err != nil {
		t.Fatal(err)
	}
	if err := got.Validate(); err != nil {
		t.Fatal(err)
	}
	return got
}

// TestConfigLayering: defaults < file < environment < flags, and Validate names
// the offending setting.
func TestConfigLayering(t *testing.T) {
	file := filepath.Join(t.TempDir(), "c.json")
	if err := os.WriteFile(file, []byte(`{"api-addr":"127.0.0.1:9001","rate-limit":50,"node-id":"fromfile","log-format":"text"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HOSTPLANE_RATE_LIMIT", "70")
	t.Setenv("HOSTPLANE_NODE_ID", "fromenv")
	got, err := loadConfig(t, file, "--node-id", "fromflag")
	if err != nil {
		t.Fatal(err)
	}
	if got.APIAddr != "127.0.0.1:9001" || got.RateLimit != 70 || got.NodeID != "fromflag" || got.LogFormat != "text" || got.RaftAddr != Defaults().RaftAddr {
		t.Fatalf("layering wrong: %+v", got)
	}
	if err := got.Validate(); err != nil {
		t.Fatalf("valid config rejected: %v", err)
	}
	if got.AdminSocket != filepath.Join(got.DataDir, "admin.sock") {
		t.Fatalf("admin socket default: %q", got.AdminSocket)
	}

	if err := os.WriteFile(file, []byte(`{"no-such-setting":1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadConfig(t, file, "--node-id", "fromflag"); err == nil || !strings.Contains(err.Error(), "no-such-setting") {
		t.Fatalf("unknown file setting: %v", err)
	}
	bad := Defaults()
	bad.NodeID, bad.APIAddr, bad.RateLimit, bad.LogLevel, bad.RaftTLSCert, bad.PprofAddr, bad.MetricsAddr = "Bad/Id", "nope", 0, "loud", "x.pem", "0.0.0.0:6060", "nohost"
	bad.StatsStreamsPerAccount, bad.StatsCallsPerNode = 0, 256 // the agent's whole session: nothing left for actions
	bad.StatsStreamsPerIP = 0
	err = bad.Validate()
	for _, want := range []string{"node-id", "api-addr", "rate-limit", "log-level", "raft-tls-cert", "pprof-addr", "metrics-addr", "stats-streams-per-account", "stats-streams-per-ip", "stats-calls-per-node"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate does not name %s: %v", want, err)
		}
	}
}

// TestShippedConfigLoads: the coordinator.json the packages install uses keys
// this build knows, and validates.
func TestShippedConfigLoads(t *testing.T) {
	validConfig(t, "../../../packaging/config/coordinator.json")
}

// TestReservedDomainsSetting: --reserved-domains (here from the
// environment, as any setting) is a comma-separated list taken in its
// canonical form (lower case, no trailing dot, punycode); an entry that is
// not a domain is refused naming the setting.
func TestReservedDomainsSetting(t *testing.T) {
	t.Setenv("HOSTPLANE_RESERVED_DOMAINS", "Provider.Example., panel.example,,bücher.example")
	got := validConfig(t, "")
	if l := strings.Join(got.ReservedList, " "); l != "provider.example panel.example xn--bcher-kva.example" {
		t.Fatalf("reserved list %q", l)
	}
	bad := Defaults()
	bad.ReservedDomains = "provider.example,not a domain"
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "reserved-domains") || !strings.Contains(err.Error(), "not a domain") {
		t.Fatalf("a bad reserved domain: %v", err)
	}
	if none := Defaults(); none.Validate() != nil || none.ReservedList != nil {
		t.Fatalf("default: %v %q, want no reserved domains", none.Validate(), none.ReservedList)
	}
}

// TestTrustedProxiesSetting: --trusted-proxies is a comma-separated CIDR
// list from the file (a JSON list too), the environment or the flag; a bad
// entry is refused at start naming the setting; the default is none.
func TestTrustedProxiesSetting(t *testing.T) {
	file := filepath.Join(t.TempDir(), "c.json")
	if err := os.WriteFile(file, []byte(`{"trusted-proxies":["10.0.0.0/8","2001:db8::/32"]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	got := validConfig(t, file)
	if fmt.Sprint(got.TrustedProxyList) != "[10.0.0.0/8 2001:db8::/32]" {
		t.Fatalf("from the file: %v", got.TrustedProxyList)
	}
	t.Setenv("HOSTPLANE_TRUSTED_PROXIES", "192.0.2.0/24, 127.0.0.1")
	got = validConfig(t, file)
	if fmt.Sprint(got.TrustedProxyList) != "[192.0.2.0/24 127.0.0.1/32]" {
		t.Fatalf("from the environment: %v", got.TrustedProxyList)
	}
	got, err := loadConfig(t, file, "--trusted-proxies", "10.0.0.0/33")
	if err != nil {
		t.Fatal(err)
	}
	if err := got.Validate(); err == nil || !strings.Contains(err.Error(), "trusted-proxies") || !strings.Contains(err.Error(), "10.0.0.0/33") {
		t.Fatalf("a bad CIDR: %v", err)
	}
	if none := Defaults(); none.Validate() != nil || none.TrustedProxyList != nil {
		t.Fatalf("default: %v %v, want no trusted proxies", none.Validate(), none.TrustedProxyList)
	}
}
