// Package config holds the agent's configuration: defaults, then an optional JSON
// file, then HOSTPLANE_AGENT_* environment variables, then flags; then Validate.
package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
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
	LogLevel      string        `json:"log_level"`
	// Coordinators are the coordinators' agent session addresses (host:port,
	// UDP); empty: the agent runs without a coordinator session.
	Coordinators []string `json:"coordinators,omitempty"`
	// JoinToken enrols the node once (hostplanectl node token create); after
	// that the node's certificate in DataDir/session is used.
	JoinToken string `json:"join_token,omitempty"`
	// NodeID names the node to the coordinators (default: the host name).
	NodeID string `json:"node_id,omitempty"`
	// Failpoint kills the process (SIGKILL) when an operation reaches the named step,
	// e.g. "vm.reinstall:disk-swapped". Crash tests only.
	Failpoint string `json:"failpoint,omitempty"`
}

// Default returns the built-in defaults.
func Default() Config {
	return Config{
		DataDir:       "/var/lib/hostplane/agent",
		Socket:        api.NodeDefaultSocket,
		LibvirtSocket: "/var/run/libvirt/libvirt-sock",
		PoolName:      "hostplane",
		PoolPath:      "/var/lib/hostplane/pool",
		DomainType:    "auto",
		Machine:       "pc",
		Emulator:      "/usr/bin/qemu-system-x86_64",
		StopGrace:     60 * time.Second,
		Network:       "user",
		MinFreeBytes:  1 << 30,
		StatsInterval: 10 * time.Second,
		StatsRing:     60,
		LogLevel:      "info",
	}
}

// LoadFile overlays a JSON config file onto c.
func (c *Config) LoadFile(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	// Durations are written as strings ("60s").
	for _, k := range []string{"stop_grace", "stats_interval"} {
		if v, ok := raw[k]; ok {
			var s string
			if err := json.Unmarshal(v, &s); err != nil {
				return fmt.Errorf("config file %s: %s: want a duration string like \"60s\"", path, k)
			}
			d, err := time.ParseDuration(s)
			if err != nil {
				return fmt.Errorf("config file %s: %s: %w", path, k, err)
			}
			if k == "stop_grace" {
				c.StopGrace = d
			} else {
				c.StatsInterval = d
			}
			delete(raw, k)
		}
	}
	rest, _ := json.Marshal(raw)
	dec := json.NewDecoder(bytes.NewReader(rest))
	dec.DisallowUnknownFields()
	if err := dec.Decode(c); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	return nil
}

// LoadEnv overlays HOSTPLANE_AGENT_* variables.
func (c *Config) LoadEnv(getenv func(string) string) error {
	str := map[string]*string{
		"DATA_DIR": &c.DataDir, "SOCKET": &c.Socket, "LIBVIRT_SOCKET": &c.LibvirtSocket, "POOL_NAME": &c.PoolName,
		"POOL_PATH": &c.PoolPath, "DOMAIN_TYPE": &c.DomainType, "MACHINE": &c.Machine, "EMULATOR": &c.Emulator,
		"NETWORK": &c.Network, "LOG_LEVEL": &c.LogLevel, "FAILPOINT": &c.Failpoint,
		"JOIN_TOKEN": &c.JoinToken, "NODE_ID": &c.NodeID,
	}
	for k, p := range str {
		if v := getenv("HOSTPLANE_AGENT_" + k); v != "" {
			*p = v
		}
	}
	if v := getenv("HOSTPLANE_AGENT_COORDINATORS"); v != "" {
		c.Coordinators = splitList(v)
	}
	dur := map[string]*time.Duration{"STOP_GRACE": &c.StopGrace, "STATS_INTERVAL": &c.StatsInterval}
	for k, p := range dur {
		if v := getenv("HOSTPLANE_AGENT_" + k); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil {
				return fmt.Errorf("HOSTPLANE_AGENT_%s: %w", k, err)
			}
			*p = d
		}
	}
	if v := getenv("HOSTPLANE_AGENT_STATS_RING"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("HOSTPLANE_AGENT_STATS_RING: %w", err)
		}
		c.StatsRing = n
	}
	return nil
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
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error")
	fs.Func("coordinators", "comma-separated agent session addresses (host:port) of the coordinators; empty: no coordinator session (default "+strconv.Quote(strings.Join(c.Coordinators, ","))+")", func(v string) error {
		c.Coordinators = splitList(v)
		return nil
	})
	fs.StringVar(&c.JoinToken, "join-token", c.JoinToken, "join token for the first start (hostplanectl node token create); prefer HOSTPLANE_AGENT_JOIN_TOKEN")
	fs.StringVar(&c.NodeID, "node-id", c.NodeID, "node id the coordinators know this node by (default: the host name)")
}

func splitList(v string) []string {
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

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
	for _, a := range c.Coordinators {
		if _, _, err := net.SplitHostPort(a); err != nil {
			errs = append(errs, fmt.Errorf("coordinator address %q: %v", a, err))
		}
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log level %q must be debug, info, warn or error", c.LogLevel))
	}
	return errors.Join(errs...)
}
