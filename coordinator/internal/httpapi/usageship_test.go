package httpapi

import (
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
)

var usageSeeds = []string{
	`{"keys":[{"key_id":"key_1","last_used_at":"2026-12-03T17:00:00Z","count":2,"entries":[{"at":"2026-12-03T17:00:00Z","m":"GET","p":"/v1/account","r":"/v1/account","s":200,"ip":"127.0.0.1"}]}]}`,
	`{"keys":[]}`, `{"keys":[{"key_id":"","last_used_at":"2026-12-03T17:00:00Z","count":1,"entries":[]}]}`,
	`{"keys":[{"key_id":"k","last_used_at":"2026-12-03T17:00:00Z","count":0,"entries":[]}]}`,
	`{"keys":[{"key_id":"k","count":1,"entries":[]}]}`, `{"keys":[{"key_id":"k","last_used_at":"2026-12-03T17:00:00Z","count":-1}]}`,
	`{"keys":[{"key_id":"k","last_used_at":"2026-12-03T17:00:00Z","count":1,"entries":[{},{}]}]}`,
	`{"keys":[{"key_id":"k","last_used_at":"x","count":1}]}`,
	`{"keys":[{"key_id":"k","last_used_at":"2026-12-03T17:00:00Z","last_used_ip":"2001:db8::1","count":1}]}`,
	`{"keys":[{"key_id":"k","last_used_at":"2026-12-03T17:00:00Z","last_used_ip":"a b","count":1}]}`, `{"keys":null,"x":1}`, `{`, ``, `null`, `[]`,
}

func FuzzParseUsageShipment(f *testing.F) {
	fuzzDecoder(f, usageSeeds, parseUsageShipment, func(t *testing.T, u fsm.KeyUsage) {
		for _, b := range u.Keys {
			if b.KeyID == "" || len(b.KeyID) > maxLeaseKey || b.Count < 1 || b.Count > maxUsageCount || len(b.Entries) > usageEntriesPerFlush ||
				int64(len(b.Entries)) > b.Count || b.LastUsedAt.IsZero() || len(b.LastUsedIP) > maxUsageIP || strings.ContainsAny(b.LastUsedIP, " \t\n") {
				t.Fatalf("accepted %+v", b)
			}
		}
	})
}

// TestUsageMergeKeepsTheCap: a merged batch adds its count and a later last
// use, and its entries only as far as the per-flush cap leaves room.
func TestUsageMergeKeepsTheCap(t *testing.T) {
	u := NewUsageRecorder()
	t0 := time.Date(2026, 12, 3, 17, 0, 0, 0, time.UTC)
	for i := range usageEntriesPerFlush - 1 {
		u.Record("key_1", fsm.KeyUsageEntry{At: t0.Add(time.Duration(i) * time.Second), Method: "GET", Path: "/v1/account"})
	}
	u.Merge(fsm.KeyUsageBatch{KeyID: "key_1", LastUsedAt: t0.Add(time.Hour), Count: 3,
		Entries: []fsm.KeyUsageEntry{{At: t0.Add(time.Hour), Path: "/a"}, {At: t0, Path: "/b"}, {At: t0, Path: "/c"}}})
	u.Merge(fsm.KeyUsageBatch{KeyID: "key_2", LastUsedAt: t0, Count: 1, Entries: []fsm.KeyUsageEntry{{At: t0, Path: "/d"}}})
	got := map[string]fsm.KeyUsageBatch{}
	for _, b := range u.Take().Keys {
		got[b.KeyID] = b
	}
	k1, k2 := got["key_1"], got["key_2"]
	if k1.Count != int64(usageEntriesPerFlush-1+3) || !k1.LastUsedAt.Equal(t0.Add(time.Hour)) || len(k1.Entries) != usageEntriesPerFlush || k1.Entries[usageEntriesPerFlush-1].Path != "/a" {
		t.Errorf("key_1 after the merge: count %d, last %v, %d entries", k1.Count, k1.LastUsedAt, len(k1.Entries))
	}
	if k2.Count != 1 || len(k2.Entries) != 1 || k2.Entries[0].Path != "/d" {
		t.Errorf("key_2 after the merge: %+v", k2)
	}
	if u.Take() != nil {
		t.Error("Take after Take: not empty")
	}
}

// TestUsageRecorderLastIP: a key's batch carries the address of its newest
// use, whatever order the uses (and a follower's merged batches) came in.
func TestUsageRecorderLastIP(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	u := NewUsageRecorder()
	u.Record("key_a", fsm.KeyUsageEntry{At: t0.Add(2 * time.Second), IP: "192.0.2.2"})
	u.Record("key_a", fsm.KeyUsageEntry{At: t0.Add(1 * time.Second), IP: "192.0.2.1"})
	u.Merge(fsm.KeyUsageBatch{KeyID: "key_a", Count: 1, LastUsedAt: t0, LastUsedIP: "192.0.2.9"})
	if b := u.Take().Keys[0]; b.LastUsedIP != "192.0.2.2" || !b.LastUsedAt.Equal(t0.Add(2*time.Second)) || b.Count != 3 {
		t.Fatalf("batch: %+v, want 192.0.2.2 at +2 s, 3 uses", b)
	}
	u.Record("key_a", fsm.KeyUsageEntry{At: t0, IP: "192.0.2.1"})
	u.Merge(fsm.KeyUsageBatch{KeyID: "key_a", Count: 1, LastUsedAt: t0.Add(time.Second), LastUsedIP: "2001:db8::1"})
	if b := u.Take().Keys[0]; b.LastUsedIP != "2001:db8::1" {
		t.Fatalf("after a newer merged batch: %+v", b)
	}
}
