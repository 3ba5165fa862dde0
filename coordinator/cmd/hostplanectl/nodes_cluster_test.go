package main

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
)

// TestNodeClusterCLI drives `hostplanectl node token create|list|show|remove`
// against a real single-node coordinator.
func TestNodeClusterCLI(t *testing.T) {
	_, g, _ := cliCluster(t)
	sock := g.socket

	out, err := runNode("--json", "token", "create", "--admin-socket", sock, "--ttl", "10m", "--node-id", "hv-9")
	var tok api.JoinTokenCreated
	if err != nil || json.Unmarshal([]byte(out), &tok) != nil || !strings.HasPrefix(tok.Token, "hpj1.") || tok.NodeID != "hv-9" {
		t.Fatalf("token create: %q %v", out, err)
	}
	if d := time.Until(tok.ExpiresAt); d < 9*time.Minute || d > 11*time.Minute {
		t.Fatalf("expires in %s", d)
	}
	out, err = runNode("token", "create", "--admin-socket", sock)
	if err != nil || !strings.Contains(out, "shown only this once") || !strings.Contains(out, "hpj1.") {
		t.Fatalf("token create text: %q %v", out, err)
	}
	var ue usageError
	if _, err := runNode("token", "create", "--admin-socket", sock, "--ttl", "200h"); !errors.As(err, &ue) {
		t.Fatalf("ttl too long: %v", err)
	}
	out, err = runNode("--json", "list", "--admin-socket", sock)
	if err != nil || strings.TrimSpace(out) != "[]" {
		t.Fatalf("list: %q %v", out, err)
	}
	out, err = runNode("list", "--admin-socket", sock)
	if err != nil || !strings.Contains(out, "LAST SEEN") {
		t.Fatalf("list text: %q %v", out, err)
	}
	if _, err := runNode("show", "hv-9", "--admin-socket", sock); api.StatusOf(err) != 404 {
		t.Fatalf("show unknown: %v", err)
	}
	if _, err := runNode("remove", "hv-9", "--admin-socket", sock); api.StatusOf(err) != 404 {
		t.Fatalf("remove unknown: %v", err)
	}
}

// TestNodeShowHostingConnection: `node show` of a hosting node says where
// its customers connect, as its agent reported it: the public SFTP host
// and port, and MariaDB's TCP port or none; and that nothing was reported
// yet where nothing was. A node without the hosting role shows none of it.
func TestNodeShowHostingConnection(t *testing.T) {
	show := func(n api.AgentNode) string {
		var b strings.Builder
		writeNodeShow(&b, n)
		return b.String()
	}
	n := api.AgentNode{ID: "web-1", Roles: []string{api.RoleHosting},
		HostingConnection: &api.NodeHostingConnection{SFTPHost: "sftp.example.net", SFTPPort: 2222, DBPort: 3307}}
	for _, want := range []string{"sftp:          sftp.example.net, port 2222\n", "mariadb port:  3307\n"} {
		if out := show(n); !strings.Contains(out, want) {
			t.Fatalf("node show: %q lacks %q", out, want)
		}
	}
	n.HostingConnection = &api.NodeHostingConnection{SFTPPort: 22}
	out := show(n)
	if !strings.Contains(out, "sftp:          each account's domain") || !strings.Contains(out, "mariadb port:  none (MariaDB takes no TCP connections") {
		t.Fatalf("node show without a public host name or a MariaDB port: %q", out)
	}
	n.HostingConnection = &api.NodeHostingConnection{SFTPPort: 22, DBKnown: true}
	if out := show(n); !strings.Contains(out, "mariadb port:  none (MariaDB takes no TCP connections): accounts") {
		t.Fatalf("node show of a node whose MariaDB said it takes no TCP: %q", out)
	}
	n.HostingConnection = nil
	if out := show(n); !strings.Contains(out, "sftp:          not reported") || !strings.Contains(out, "mariadb port:  not reported: accounts show 3306") {
		t.Fatalf("node show of a node that reported nothing: %q", out)
	}
	n.Roles = []string{api.RoleKVM}
	if out := show(n); strings.Contains(out, "sftp:") || strings.Contains(out, "mariadb") {
		t.Fatalf("node show of a kvm node: %q", out)
	}
}
