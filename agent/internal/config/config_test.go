package config

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestOrderAndValidate(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	f := filepath.Join(t.TempDir(), "c.json")
	os.WriteFile(f, []byte(`{"stop_grace":"5s","pool_name":"file","domain_type":"qemu"}`), 0o600)
	if err := c.LoadFile(f); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"HOSTPLANE_AGENT_POOL_NAME": "env", "HOSTPLANE_AGENT_STATS_RING": "7"}
	if err := c.LoadEnv(func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	c.RegisterFlags(fs)
	if err := fs.Parse([]string{"-stats-interval", "2s"}); err != nil {
		t.Fatal(err)
	}
	if c.StopGrace != 5*time.Second || c.PoolName != "env" || c.StatsRing != 7 || c.StatsInterval != 2*time.Second || c.DomainType != "qemu" {
		t.Fatalf("%+v", c)
	}
	os.WriteFile(f, []byte(`{"unknown_key":1}`), 0o600)
	if err := c.LoadFile(f); err == nil {
		t.Fatal("unknown key accepted")
	}
	bad := Default()
	bad.DomainType, bad.PoolPath, bad.StatsRing = "xen", "relative", 0
	err := bad.Validate()
	if err == nil || !strings.Contains(err.Error(), "domain type") || !strings.Contains(err.Error(), "pool path") || !strings.Contains(err.Error(), "stats ring") {
		t.Fatalf("validate: %v", err)
	}
}
