package clustertest

import (
	"context"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
)

// TestKeyLastUsedIP: a key's list entry (customer and operator) shows the
// client address of its last use, as the coordinator that answered saw it:
// the leader's own client, then a client of a follower (whose use reaches
// the leader's batch by the follower's shipment or the forwarded request's
// vouched address). Headers a client sets itself (X-Forwarded-For, the
// coordinators' own client-address header without the cluster secret) are
// not believed. It is written with last_used_at in the batched usage flush,
// never a Raft write per request.
func TestKeyLastUsedIP(t *testing.T) {
	r := newInternalRig(t, "lastip@example.com", api.KeyCreateRequest{Name: "roaming", Scopes: []string{api.ScopeAccountRead}})
	c, k, ld := r.c, r.key.Key, r.ld
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		st, err := c.Admin(ld).ClusterStatus(ctx)
		if err == nil && st.Level >= 2 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the cluster never reached semantics level 2: %+v %v", st, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Every member applies the raise too: a follower that had not yet ships
	// its usage without the address, as to a leader of the release before.
	waitAllAtLevel(t, c, 2)
	keyInfo := func() api.KeyInfo {
		t.Helper()
		keys, err := c.Admin(ld).Keys(ctx, r.acc.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, ki := range keys {
			if ki.ID == r.key.Info.ID {
				return ki
			}
		}
		t.Fatalf("key %s not listed", r.key.Info.ID)
		return api.KeyInfo{}
	}
	if ki := keyInfo(); ki.LastUsedIP != "" || ki.LastUsedAt != nil {
		t.Fatalf("an unused key: last_used_ip %q, last_used_at %v", ki.LastUsedIP, ki.LastUsedAt)
	}
	waitIP := func(want string, uses int64) api.KeyInfo {
		t.Helper()
		for {
			ki := keyInfo()
			if ki.UseCount >= uses {
				if ki.LastUsedIP != want || ki.LastUsedAt == nil {
					t.Fatalf("after use %d: last_used_ip %q (last_used_at %v), want %q", uses, ki.LastUsedIP, ki.LastUsedAt, want)
				}
				return ki
			}
			if ctx.Err() != nil {
				t.Fatalf("use %d never recorded: %+v", uses, ki)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	forged := map[string]string{"X-Forwarded-For": "203.0.113.9", "X-Real-Ip": "203.0.113.9", "X-Hostplane-Client-Ip": "203.0.113.9"}
	follower := (ld + 1) % 3

	if rep := newAPIClient(t, c.URL(ld)).From("127.0.0.2").Call(k, "GET", "/v1/account", nil, forged); rep.Status != 200 {
		t.Fatalf("GET /v1/account from 127.0.0.2: %s", rep)
	}
	waitIP("127.0.0.2", 1)
	fc := newAPIClient(t, c.URL(follower)).From("127.0.0.3")
	if rep := fc.Call(k, "GET", "/v1/account", nil, forged); rep.Status != 200 {
		t.Fatalf("GET /v1/account from 127.0.0.3 through a follower: %s", rep)
	}
	waitIP("127.0.0.3", 2)
	// The customer's own list shows it too (and is itself the third use).
	rep := fc.Call(k, "GET", "/v1/account/api-keys", nil, nil)
	var l api.KeyList
	rep.Decode(t, &l)
	found := false
	for _, ki := range l.Data {
		if ki.ID == r.key.Info.ID {
			found = ki.LastUsedIP == "127.0.0.3"
		}
	}
	if rep.Status != 200 || !found {
		t.Fatalf("the customer's key list: %s", rep)
	}
}
