// Package seed builds cloud-init NoCloud seed images (an ISO 9660 volume labelled
// "cidata") and SHA-512 crypt password hashes, entirely in Go.
package seed

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Config is what a seed tells cloud-init. PasswordHash is a crypt hash; a plaintext
// password never reaches this package's output.
type Config struct {
	InstanceID   string
	Hostname     string
	PasswordHash string   // "$6$…"; empty leaves the root password locked
	SSHKeys      []string // validated authorized_keys lines
	MAC          string
	IPv4CIDR     string // empty: DHCP, unless IPv6CIDR is set (IPv6 only)
	Gateway4     string
	IPv6CIDR     string // empty: none configured (the guest's defaults apply)
	Gateway6     string
	Resolvers    []string // nameservers; empty: none written
}

// Files returns the NoCloud files: meta-data, user-data and network-config. Each is
// YAML written as JSON (JSON is valid YAML), so no value can break the document.
func Files(c Config) ([]File, error) {
	meta := map[string]any{"instance-id": c.InstanceID, "local-hostname": c.Hostname}
	root := map[string]any{"name": "root", "lock_passwd": c.PasswordHash == ""}
	if c.PasswordHash != "" {
		root["hashed_passwd"] = c.PasswordHash
	}
	if len(c.SSHKeys) > 0 {
		root["ssh_authorized_keys"] = c.SSHKeys
	}
	user := map[string]any{
		"hostname":          c.Hostname,
		"preserve_hostname": false,
		"disable_root":      false,
		"ssh_pwauth":        c.PasswordHash != "",
		"users":             []any{root},
		"chpasswd":          map[string]any{"expire": false},
	}
	eth := map[string]any{"match": map[string]any{"macaddress": c.MAC}, "set-name": "eth0"}
	var addrs []string
	var routes []any
	if c.IPv4CIDR == "" {
		// DHCP unless the guest is IPv6-only (a static IPv6 address alone).
		eth["dhcp4"] = c.IPv6CIDR == ""
	} else {
		eth["dhcp4"] = false
		addrs = append(addrs, c.IPv4CIDR)
		if c.Gateway4 != "" {
			routes = append(routes, map[string]any{"to": "0.0.0.0/0", "via": c.Gateway4})
		}
	}
	if c.IPv6CIDR != "" {
		eth["dhcp6"] = false
		addrs = append(addrs, c.IPv6CIDR)
		if c.Gateway6 != "" {
			// on-link: a gateway outside the prefix (a link-local router) is
			// reachable directly on this link.
			routes = append(routes, map[string]any{"to": "::/0", "via": c.Gateway6, "on-link": true})
		}
	}
	if addrs != nil {
		eth["addresses"] = addrs
	}
	if routes != nil {
		eth["routes"] = routes
	}
	if len(c.Resolvers) > 0 {
		eth["nameservers"] = map[string]any{"addresses": c.Resolvers}
	}
	network := map[string]any{"version": 2, "ethernets": map[string]any{"eth0": eth}}

	enc := func(prefix string, v any) ([]byte, error) {
		var b bytes.Buffer
		b.WriteString(prefix)
		e := json.NewEncoder(&b)
		e.SetEscapeHTML(false)
		e.SetIndent("", "  ")
		if err := e.Encode(v); err != nil {
			return nil, fmt.Errorf("seed: encode: %w", err)
		}
		return b.Bytes(), nil
	}
	m, err := enc("", meta)
	if err != nil {
		return nil, err
	}
	u, err := enc("#cloud-config\n", user)
	if err != nil {
		return nil, err
	}
	n, err := enc("", network)
	if err != nil {
		return nil, err
	}
	return []File{{"meta-data", m}, {"user-data", u}, {"network-config", n}}, nil
}

// Build returns a NoCloud seed ISO (label "cidata") for c.
func Build(c Config) ([]byte, error) {
	files, err := Files(c)
	if err != nil {
		return nil, err
	}
	return WriteISO("cidata", files)
}
