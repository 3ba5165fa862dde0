package fsm

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
)

// keyFSM opens an FSM, closed when the test ends, holding account acc_a and
// its key key_a (account:read), with apply: one command at t0 as the next
// entry, failing the test on an error.
func keyFSM(t *testing.T) (*FSM, func(typ CommandType, p any)) {
	t.Helper()
	f := open(t, filepath.Join(t.TempDir(), "f.db"))
	t.Cleanup(func() { f.Close() })
	idx := uint64(0)
	apply := func(typ CommandType, p any) {
		t.Helper()
		idx++
		if r := f.ApplyBatch([]*raft.Log{logAt(t, idx, typ, t0, p)})[0].(*Result); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	apply(CmdAccountCreate, AccountCreate{ID: "acc_a", Email: "a@x.io", Name: "a", Country: "TR"})
	apply(CmdKeyCreate, KeyCreate{ID: "key_a", AccountID: "acc_a", Hash: "h", Prefix: "snc_a", Scopes: []string{api.ScopeAccountRead}})
	return f, apply
}

// keyA is key_a as f holds it.
func keyA(t *testing.T, f *FSM) api.KeyInfo {
	t.Helper()
	return readOne(t, f, func(r store.ReadTx) (api.KeyInfo, error) { return r.Key("key_a") })
}

// afterT0 is s seconds after t0.
func afterT0(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }

// keyAUse is a usage flush of one use of key_a at s seconds, from ip.
func keyAUse(s int, ip string) KeyUsage {
	return KeyUsage{Keys: []KeyUsageBatch{{KeyID: "key_a", LastUsedAt: afterT0(s), LastUsedIP: ip, Count: 1}}}
}

// TestKeyUsageLogNewestFirst: a key's usage log reads newest first by the
// time of each request, not by when its batch was written: a follower's
// stale reads reach the log through the leader's next flush, after newer
// requests the leader answered itself. The count and the last use add up.
func TestKeyUsageLogNewestFirst(t *testing.T) {
	f, apply := keyFSM(t)
	entry := func(s int, path string) KeyUsageEntry {
		return KeyUsageEntry{At: afterT0(s), Method: "GET", Path: path, Status: 200, IP: "127.0.0.1"}
	}
	// The leader's flush: its own requests at 2 s and 4 s.
	apply(CmdKeyUsage, KeyUsage{Keys: []KeyUsageBatch{{KeyID: "key_a", LastUsedAt: afterT0(4), Count: 2, Entries: []KeyUsageEntry{entry(2, "/l2"), entry(4, "/l4")}}}})
	// The next flush: a follower's stale reads at 1 s and 3 s, then the leader's at 5 s.
	apply(CmdKeyUsage, KeyUsage{Keys: []KeyUsageBatch{{KeyID: "key_a", LastUsedAt: afterT0(5), Count: 3, Entries: []KeyUsageEntry{entry(5, "/l5"), entry(1, "/f1"), entry(3, "/f3")}}}})
	var all, page, admin, admin3 []api.KeyUsage
	var total int
	var k api.KeyInfo
	if err := f.Read(func(r store.ReadTx) (err error) {
		if all, total, err = r.KeyUsagePage("key_a", 0, 50); err != nil {
			return err
		}
		// The operator's read (GET /admin/keys/{id}/usage, hostplanectl key usage).
		if admin, err = r.KeyUsage("key_a", 200); err != nil {
			return err
		}
		if admin3, err = r.KeyUsage("key_a", 3); err != nil {
			return err
		}
		if page, _, err = r.KeyUsagePage("key_a", 1, 2); err != nil {
			return err
		}
		k, err = r.Key("key_a")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, u := range all {
		got = append(got, u.Path)
	}
	if total != 5 || len(got) != 5 || got[0] != "/l5" || got[1] != "/l4" || got[2] != "/f3" || got[3] != "/l2" || got[4] != "/f1" {
		t.Errorf("usage log %v (total %d), want /l5 /l4 /f3 /l2 /f1", got, total)
	}
	var adm []string
	for _, u := range admin {
		adm = append(adm, u.Path)
	}
	if len(adm) != 5 || adm[0] != "/l5" || adm[1] != "/l4" || adm[2] != "/f3" || adm[3] != "/l2" || adm[4] != "/f1" {
		t.Errorf("the operator's usage log %v, want /l5 /l4 /f3 /l2 /f1", adm)
	}
	if len(admin3) != 3 || admin3[0].Path != "/l5" || admin3[2].Path != "/f3" {
		t.Errorf("the operator's newest 3: %+v, want /l5 /l4 /f3", admin3)
	}
	if len(page) != 2 || page[0].Path != "/l4" || page[1].Path != "/f3" {
		t.Errorf("offset 1 limit 2: %+v, want /l4 /f3", page)
	}
	if k.UseCount != 5 || k.LastUsedAt == nil || !k.LastUsedAt.Equal(afterT0(5)) {
		t.Errorf("key after the flushes: use_count %d, last_used_at %v", k.UseCount, k.LastUsedAt)
	}
}

// TestKeyLastUsedIPApply: a usage flush records the address of the key's
// last use with its time, from semantics level 2 (below it the replicas of
// the release before ignore it, and so does this one); a batch older than
// the recorded last use changes neither.
func TestKeyLastUsedIPApply(t *testing.T) {
	f, apply := keyFSM(t)
	apply(CmdKeyUsage, keyAUse(1, "192.0.2.1"))
	if k := keyA(t, f); k.LastUsedIP != "" || k.LastUsedAt == nil {
		t.Fatalf("level 1: %+v, want last_used_at without an address", k)
	}
	apply(CmdClusterLevel, ClusterLevel{Level: 2})
	apply(CmdKeyUsage, keyAUse(3, "192.0.2.3"))
	if k := keyA(t, f); k.LastUsedIP != "192.0.2.3" || !k.LastUsedAt.Equal(afterT0(3)) {
		t.Fatalf("level 2: %+v, want 192.0.2.3 at 3 s", k)
	}
	apply(CmdKeyUsage, keyAUse(2, "192.0.2.2")) // a follower's older use, shipped late
	if k := keyA(t, f); k.LastUsedIP != "192.0.2.3" || !k.LastUsedAt.Equal(afterT0(3)) || k.UseCount != 3 {
		t.Fatalf("after an older batch: %+v, want 192.0.2.3 at 3 s, 3 uses", k)
	}
}

// TestKeyLastUsedIPFollowsTheLastUse: from semantics level 2 a key's
// last_used_ip is always the address of the use at its last_used_at. A newer
// use whose batch carries no address (a follower that had not yet applied
// level 2 ships without it, as to a leader of the release before) clears the
// address, so the key never shows a new time beside the address of an older
// use; an older batch changes neither; a later use with an address sets it
// again. Below level 2 the address is never written, as before.
func TestKeyLastUsedIPFollowsTheLastUse(t *testing.T) {
	f, apply := keyFSM(t)
	want := func(what string, ip string, s int, uses int64) {
		t.Helper()
		k := keyA(t, f)
		if k.LastUsedIP != ip || k.LastUsedAt == nil || !k.LastUsedAt.Equal(afterT0(s)) || k.UseCount != uses {
			t.Fatalf("%s: last_used_ip %q, last_used_at %v, use_count %d; want %q at %v, %d uses", what, k.LastUsedIP, k.LastUsedAt, k.UseCount, ip, afterT0(s), uses)
		}
	}
	apply(CmdKeyUsage, keyAUse(1, "192.0.2.1"))
	apply(CmdKeyUsage, keyAUse(2, ""))
	want("level 1", "", 2, 2)
	apply(CmdClusterLevel, ClusterLevel{Level: 2})
	apply(CmdKeyUsage, keyAUse(3, "192.0.2.3"))
	want("level 2, a use with its address", "192.0.2.3", 3, 3)
	apply(CmdKeyUsage, keyAUse(4, "")) // a newer use, shipped without its address
	want("a newer use without an address", "", 4, 4)
	apply(CmdKeyUsage, keyAUse(3, "192.0.2.33")) // an older use with one, shipped late
	want("an older use after it", "", 4, 5)
	apply(CmdKeyUsage, keyAUse(4, "192.0.2.44")) // the same instant: the first one written stands
	want("a use at the same instant", "", 4, 6)
	apply(CmdKeyUsage, keyAUse(5, "192.0.2.5"))
	want("a newer use with an address", "192.0.2.5", 5, 7)
}
