package audit

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// TestAdminBackupRestoreRoundTrip: `hostplanectl cluster backup` on one
// follower and `cluster restore` of that file on the other bring every
// coordinator back to the backed-up state (an account made after it is
// gone, a key revoked after it works again, the wallet is the backup's, read
// from each coordinator's own state), keep the cluster's membership and API
// addresses, and the cluster takes writes after. A file that is not a backup,
// or a backup cut short, is refused (exit 2 naming the restore) and changes
// nothing.
func TestAdminBackupRestoreRoundTrip(t *testing.T) {
	c, ld := plainCluster(t)
	f1, f2 := c.Nodes[(ld+1)%3], c.Nodes[(ld+2)%3]
	mustCtl := func(p *framework.CoordinatorProcess, args ...string) string {
		t.Helper()
		r := ctl(t, p, args...)
		if r.code != 0 {
			t.Fatalf("%s", r)
		}
		return r.stdout
	}
	var a api.Account
	if err := json.Unmarshal([]byte(mustCtl(f1, "--json", "account", "create", "--email", "kept@example.com")), &a); err != nil {
		t.Fatal(err)
	}
	key := strings.TrimSpace(mustCtl(f1, "key", "create", a.ID, "--scopes", "account:read,billing:read"))
	var keys []api.KeyInfo
	if err := json.Unmarshal([]byte(mustCtl(f1, "--json", "key", "list", a.ID)), &keys); err != nil || len(keys) != 1 {
		t.Fatalf("keys %v %v", keys, err)
	}
	mustCtl(f1, "wallet", "credit", a.ID, "--amount", "25")
	before := voterIDs(clusterStatus(t, f1))
	// A backup is taken on the leader (a follower forwards it; --stale
	// copies the follower's own state); waiting until f1 has applied what
	// the leader committed keeps this test's reads of f1 below in step.
	commit := clusterStatus(t, c.Nodes[ld]).CommitIndex
	framework.WaitFor(t, f1.ID+" to apply the leader's commit index", 10*time.Second, 20*time.Millisecond, func() bool {
		return clusterStatus(t, f1).AppliedIndex >= commit
	})
	backup := t.TempDir() + "/state.snap"
	mustCtl(f1, "cluster", "backup", backup)

	// After the backup: another account, the key revoked, more money.
	mustCtl(f2, "account", "create", "--email", "after-backup@example.com")
	mustCtl(f2, "key", "revoke", keys[0].ID)
	mustCtl(f2, "wallet", "credit", a.ID, "--amount", "10")
	wallet := func(i int, stale bool) (int, int64) {
		path := "/v1/billing/wallet"
		if stale {
			path += "?consistency=stale"
		}
		rep := framework.NewAPI(t, c.URL(i), nil).Call(key, "GET", path, nil, nil)
		var w api.Wallet
		if rep.Status == 200 {
			rep.Decode(t, &w)
		}
		return rep.Status, w.BalanceUsdCents
	}
	if st, _ := wallet(0, false); st != 401 {
		t.Fatalf("the revoked key: %d", st)
	}

	// Refusals change nothing.
	garbage := t.TempDir() + "/garbage.snap"
	raw, err := os.ReadFile(backup)
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string][]byte{"garbage": []byte("not a backup\n"), "empty": nil, "cut short": raw[:len(raw)/2]} {
		if err := os.WriteFile(garbage, content, 0o600); err != nil {
			t.Fatal(err)
		}
		if r := ctl(t, f2, "cluster", "restore", garbage); r.code != 2 || !strings.Contains(r.stderr, "restore") || r.stdout != "" {
			t.Errorf("restore of a %s file: want exit 2 naming the restore: %s", name, r)
		}
	}
	if r := ctl(t, f2, "account", "show", "after-backup@example.com"); r.code != 0 {
		t.Fatalf("a refused restore changed the state: %s", r)
	}

	r := ctl(t, f2, "--json", "cluster", "restore", backup)
	var st api.ClusterStatus
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &st) != nil {
		t.Fatalf("restore: %s", r)
	}
	for i, p := range c.Nodes {
		framework.WaitFor(t, "coordinator "+p.ID+" to hold the restored state", 20*time.Second, 100*time.Millisecond, func() bool {
			code, bal := wallet(i, true)
			return code == 200 && bal == 2500
		})
		if code, bal := wallet(i, false); code != 200 || bal != 2500 {
			t.Fatalf("coordinator %s after the restore: key %d, balance %d, want 200 and 2500", p.ID, code, bal)
		}
		if r := ctl(t, p, "account", "show", "after-backup@example.com"); r.code != 1 || !strings.Contains(r.stderr, "404") {
			t.Fatalf("coordinator %s: the account made after the backup: %s", p.ID, r)
		}
		s := clusterStatus(t, p)
		if got := voterIDs(s); strings.Join(got, ",") != strings.Join(before, ",") {
			t.Fatalf("coordinator %s: voters %v after the restore, want %v", p.ID, got, before)
		}
		for _, m := range s.Servers {
			if m.APIAddr == "" {
				t.Fatalf("coordinator %s: %s lost its API address in the restore: %+v", p.ID, m.ID, s.Servers)
			}
		}
	}
	// Writes work after, through a follower (forwarding needs the API addresses).
	f := c.Nodes[(c.WaitLeader(20*time.Second)+1)%3]
	mustCtl(f, "account", "create", "--email", "after-restore@example.com")
	mustCtl(f, "wallet", "credit", a.ID, "--amount", "1")
	if _, bal := wallet(0, false); bal != 2600 {
		t.Fatalf("balance after a credit past the restore: %d", bal)
	}
}
