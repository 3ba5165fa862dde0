package clustertest

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/testcluster"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// TestNoPlaintextAPIKeyOnDisk mints keys, uses them, forces a Raft snapshot, and
// scans every file of every node's data directory (Raft log, FSM, snapshots) for
// the key strings: only their hashes may be stored.
func TestNoPlaintextAPIKeyOnDisk(t *testing.T) {
	c := testcluster.New(t, 3)
	ctx := context.Background()
	acc, key := c.NewAccount("secret@example.com")
	var keys = []string{key}
	for i := 0; i < 3; i++ {
		var k api.KeyCreated
		c.Retry503(func() (err error) {
			k, err = c.Admin(c.WaitLeader(leaderWait)).CreateKey(ctx, acc.ID, api.KeyCreateRequest{Name: "scan"})
			return err
		})
		keys = append(keys, k.Key)
	}
	// Keys the customer mints (POST /v1/account/api-keys), one of them with an
	// Idempotency-Key whose stored answer must not hold the secret either.
	var mgr api.KeyCreated
	c.Retry503(func() (err error) {
		mgr, err = c.Admin(c.WaitLeader(leaderWait)).CreateKey(ctx, acc.ID, api.KeyCreateRequest{Name: "manager", Scopes: []string{api.ScopeAccountRead, api.ScopeKeysWrite}})
		return err
	})
	keys = append(keys, mgr.Key)
	for _, idem := range []string{"", "mint-1"} {
		k, err := c.Client(c.WaitLeader(leaderWait), mgr.Key).CreateAPIKey(ctx, api.APIKeyCreateRequest{Name: "minted", Scopes: []string{api.ScopeAccountRead}}, idem)
		if err != nil || k.Key == "" {
			t.Fatalf("mint: %+v %v", k, err)
		}
		keys = append(keys, k.Key)
	}
	for _, k := range keys {
		if _, err := c.Client(c.WaitLeader(leaderWait), k).Account(ctx); err != nil {
			t.Fatal(err)
		}
	}
	c.WaitConverged(10 * time.Second)
	for i := range c.Nodes {
		if err := c.Nodes[i].Server.Node.Raft.Snapshot().Error(); err != nil {
			t.Fatal(err)
		}
	}
	scanned := 0
	for i := range c.Nodes {
		n, err := framework.ScanFiles(c.Nodes[i].Cfg.DataDir, func(p string, raw []byte) {
			for _, k := range keys {
				// The random part alone is enough to identify a leak.
				if bytes.Contains(raw, []byte(k[len("snc_"):])) {
					t.Errorf("plaintext API key found in %s", p)
				}
			}
		})
		scanned += n
		if err != nil {
			t.Fatal(err)
		}
	}
	if scanned < 9 {
		t.Fatalf("scanned only %d files", scanned)
	}
}
