package audit

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// TestOps17RotationWithAgentsConnected: what the README offers an operator
// to rotate, with an agent connected to the three coordinators.
//
//   - A customer's API key (the bootstrap account's, say): `key create`
//     mints another, `key revoke` ends the old one (401), the new one works;
//     nothing is restarted.
//   - The cluster secret: the README says to stop every coordinator, change
//     the file and start them all. After that the cluster leads again, a
//     follower forwards writes (with the new secret), the agent is ready and
//     connected again without being touched, and the key works.
//
// Not offered, so not tried: node certificates (renewed by the agent
// itself), webhook secrets by an operator (only the customer's
// rotate-secret), the key-encryption key.
func TestOps17RotationWithAgentsConnected(t *testing.T) {
	c := framework.NewProcessCluster(t, framework.ProcessOptions{N: 3, Bin: framework.Coordinator(t), RaftTimeout: framework.RaftTimeout,
		Agents: true, AgentPing: 200 * time.Millisecond, AgentGrace: 2 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	acc, oldKey, err := c.NewAccount(ctx, "ops17rot@example.com", api.AllScopes...)
	if err != nil {
		t.Fatal(err)
	}
	const node = "ops17-hv"
	c.StartTestAgent(node, strings.Join(c.AgentAddrs(), ","), "-kvm")

	ld := c.WaitLeader(20 * time.Second)
	fol := c.Nodes[(ld+1)%3]
	account := func(i int, key string) int {
		t.Helper()
		return framework.NewAPI(t, c.URL(i), nil).Call(key, "GET", "/v1/account", nil, nil).Status
	}

	// The key: another minted, the old revoked.
	run := ctl(t, fol, "key", "create", acc.ID)
	newKey := strings.TrimSpace(run.stdout)
	if run.code != 0 || newKey == "" {
		t.Fatalf("key create: %s", run)
	}
	var keys []api.KeyInfo
	for _, k := range mustList(t, fol, acc.ID) {
		if strings.HasPrefix(oldKey, k.Prefix) {
			keys = append(keys, k)
		}
	}
	if len(keys) != 1 {
		t.Fatalf("the old key among %v", mustList(t, fol, acc.ID))
	}
	if run := ctl(t, fol, "key", "revoke", keys[0].ID); run.code != 0 {
		t.Fatalf("key revoke: %s", run)
	}
	for i := range c.Nodes {
		if got := account(i, oldKey); got != 401 {
			t.Errorf("coordinator %d: the revoked key answers %d, want 401", i, got)
		}
		if got := account(i, newKey); got != 200 {
			t.Errorf("coordinator %d: the new key answers %d, want 200", i, got)
		}
	}

	// The cluster secret: every coordinator stopped, the file changed, all
	// started again.
	for _, p := range c.Nodes {
		p.Stop()
	}
	secretFile := filepath.Join(c.Dir, "cluster-secret")
	if err := os.WriteFile(secretFile, []byte("ops17-rotated-cluster-secret-0123456789abcdef"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := c.StartAll(60 * time.Second); err != nil {
		t.Fatal(err)
	}
	ld = c.WaitLeader(20 * time.Second)
	fol = c.Nodes[(ld+1)%3]
	for _, p := range c.Nodes {
		st := clusterStatus(t, p)
		if len(voterIDs(st)) != 3 || st.LeaderID != c.Nodes[ld].ID {
			t.Errorf("after the secret's rotation, status on %s: %+v", p.ID, st)
		}
	}
	if run := ctl(t, fol, "wallet", "credit", acc.ID, "--amount", "1", "--idempotency-key", "ops17-rot"); run.code != 0 {
		t.Errorf("a write through a follower after the secret's rotation: %s", run)
	}
	if got := account((ld+1)%3, newKey); got != 200 {
		t.Errorf("the key through a follower after the rotation: %d", got)
	}
	n := c.WaitNode(node, 60*time.Second, "ready and connected again", func(n api.AgentNode) bool {
		return n.State == api.AgentNodeReady && n.Connected
	})
	t.Logf("after the cluster secret's rotation the agent is %s, connected %v", n.State, n.Connected)
}

// mustList is `hostplanectl key list ACCOUNT --json` on p.
func mustList(t *testing.T, p *framework.CoordinatorProcess, account string) []api.KeyInfo {
	t.Helper()
	run := ctl(t, p, "--json", "key", "list", account)
	var keys []api.KeyInfo
	if run.code != 0 || json.Unmarshal([]byte(run.stdout), &keys) != nil {
		t.Fatalf("key list: %s", run)
	}
	return keys
}
