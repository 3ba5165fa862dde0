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

// TestCoordinatorKeyStyleAndOldKeys: the file takes flag names as keys, as the
// coordinator's does, and still the snake_case keys of earlier agent releases;
// Load puts the command line last.
func TestCoordinatorKeyStyleAndOldKeys(t *testing.T) {
	f := filepath.Join(t.TempDir(), "c.json")
	os.WriteFile(f, []byte(`{"pool-name":"new","stop_grace":"5s","coordinators":["c1:8422","c2:8422"],"min-free-bytes":2147483648,"failpoint":"vm.reinstall:disk-swapped"}`), 0o600)
	env := map[string]string{"HOSTPLANE_AGENT_STATS_RING": "9", "HOSTPLANE_AGENT_NODE_ID": "hv-1"}
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.String("config", "", "")
	def := Default()
	def.RegisterFlags(fs)
	if err := fs.Parse([]string{"-config", f, "-node-id", "hv-2", "-coordinators", "c3:8422"}); err != nil {
		t.Fatal(err)
	}
	c, err := Load(f, func(k string) string { return env[k] }, fs)
	if err != nil {
		t.Fatal(err)
	}
	if c.PoolName != "new" || c.StopGrace != 5*time.Second || c.MinFreeBytes != 2<<30 || c.StatsRing != 9 || c.NodeID != "hv-2" ||
		strings.Join(c.Coordinators, ",") != "c3:8422" || c.Failpoint != "vm.reinstall:disk-swapped" || c.DataDir != Default().DataDir {
		t.Fatalf("%+v", c)
	}
	os.WriteFile(f, []byte(`{"pool-name":"a","pool_name":"b"}`), 0o600)
	if _, err := Load(f, func(string) string { return "" }, flag.NewFlagSet("y", flag.ContinueOnError)); err == nil {
		t.Fatal("a key given twice (new and old spelling) accepted")
	}
}

// TestShippedConfigLoads: the agent.json the packages install uses keys this
// build knows, and validates.
func TestShippedConfigLoads(t *testing.T) {
	c, err := Load("../../../packaging/config/agent.json", func(string) string { return "" }, flag.NewFlagSet("x", flag.ContinueOnError))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

// TestNodeIDUsesTheCoordinatorsRule: a node id the coordinators would refuse
// at enrolment fails the agent's start instead.
func TestNodeIDUsesTheCoordinatorsRule(t *testing.T) {
	for _, id := range []string{"hv-1", "node1.dc1", "a_b", ""} {
		c := Default()
		c.NodeID = id
		if err := c.Validate(); err != nil {
			t.Errorf("node id %q refused: %v", id, err)
		}
	}
	for _, id := range []string{"HV1", "-hv", "hv/1", strings.Repeat("n", 64)} {
		c := Default()
		c.NodeID = id
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "node-id") {
			t.Errorf("node id %q: %v", id, err)
		}
	}
}

// TestBridgesRepeatable: --bridge adds a bridge each time (commas work too),
// once each, and a bad name is refused naming the setting.
func TestBridgesRepeatable(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	def := Default()
	def.RegisterFlags(fs)
	if err := fs.Parse([]string{"-bridge", "br-public", "-bridge", "br-private,br-public"}); err != nil {
		t.Fatal(err)
	}
	c, err := Load("", func(string) string { return "" }, fs)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.Bridges, " ") != "br-public br-private" {
		t.Fatalf("bridges %q", c.Bridges)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	// The file's key is the flag name, a JSON list; a flag adds to it.
	f := filepath.Join(t.TempDir(), "agent.json")
	if err := os.WriteFile(f, []byte(`{"bridge":["br-a","br-b"]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	fs2 := flag.NewFlagSet("y", flag.ContinueOnError)
	def2 := Default()
	def2.RegisterFlags(fs2)
	if err := fs2.Parse([]string{"-bridge", "br-c"}); err != nil {
		t.Fatal(err)
	}
	fc, err := Load(f, func(string) string { return "" }, fs2)
	if err != nil || strings.Join(fc.Bridges, " ") != "br-a br-b br-c" {
		t.Fatalf("file + flag bridges %q %v", fc.Bridges, err)
	}
	c.Bridges = append(c.Bridges, "br'/><x")
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "bridge") {
		t.Fatalf("bad bridge name: %v", err)
	}
}

// TestHostingSFTPHost: --hosting-sftp-host takes a host name or an IP
// address the customers reach; a zoned address (an interface of the node
// itself) and a malformed name are refused with an error naming the flag.
func TestHostingSFTPHost(t *testing.T) {
	for _, h := range []string{"", "sftp.example.net", "localhost", "192.0.2.7", "2001:db8::7"} {
		c := Default()
		c.HostingSFTPHost = h
		if err := c.Validate(); err != nil {
			t.Errorf("--hosting-sftp-host %q refused: %v", h, err)
		}
	}
	for _, h := range []string{"fe80::1%eth0", "fe80::1%25eth0", "Sftp.Example.net", "-x.example", "a b", "1.2.3.4%eth0"} {
		c := Default()
		c.HostingSFTPHost = h
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), "hosting-sftp-host") {
			t.Errorf("--hosting-sftp-host %q: %v, want an error naming the flag", h, err)
		}
	}
}
