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
	var ae *api.Error
	if _, err := runNode("show", "hv-9", "--admin-socket", sock); !errors.As(err, &ae) || ae.StatusCode != 404 {
		t.Fatalf("show unknown: %v", err)
	}
	if _, err := runNode("remove", "hv-9", "--admin-socket", sock); !errors.As(err, &ae) || ae.StatusCode != 404 {
		t.Fatalf("remove unknown: %v", err)
	}
}
