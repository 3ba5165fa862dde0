package clustertest

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/server"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/coordinator/internal/testcluster"
	"github.com/hostplane/hostplane/pkg/api"
)

// TestKeyLastUsedIPAcrossLevels: a key's last_used_ip through a rolling
// upgrade, in a cluster that starts with one coordinator acting as the
// release before semantics level 2. While the cluster is at level 1 a
// follower ships its uses to the leader without the client address (a leader
// of the release before refuses the field), and no use shows an address,
// the leader's own neither: every coordinator answers alike. Once the last
// coordinator is upgraded and the level is 2 everywhere, the follower ships
// the address and the key shows the address of its last use, whichever
// coordinator answered it. A newer use shipped without its address (a
// follower that had not yet applied the raise) shows no address, never the
// address of the use before beside the newer last_used_at.
//
// The test drives the usage shipments and the leader's flush itself (the
// same Take and CmdKeyUsage proposal as the server's flush), so it sees each
// shipment as the leader received it: the loops run once an hour here.
func TestKeyLastUsedIPAcrossLevels(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	c := testcluster.New(t, 3, func(i int, cfg *server.Config) {
		cfg.UsageFlush = time.Hour
		if i == 0 {
			// The first leader: a new cluster starts at its level.
			cfg.TestMaxLevel = 1
		}
	})
	acc, key := c.NewAccount("lastip-levels@example.com", api.ScopeAccountRead)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ld := c.WaitLeader(leaderWait)

	// use is one request answered by coordinator node itself (a stale read),
	// from the client address from.
	use := func(node int, from string) {
		t.Helper()
		if rep := newAPIClient(t, c.URL(node)).From(from).Call(key, "GET", "/v1/account?consistency=stale", nil, nil); rep.Status != http.StatusOK {
			t.Fatalf("GET /v1/account on coordinator %d from %s: %s", node, from, rep)
		}
	}
	ship := func(node int) {
		t.Helper()
		if err := c.Nodes[node].Server.API.ShipUsage(ctx); err != nil {
			t.Fatalf("coordinator %d ships its usage: %v", node, err)
		}
	}
	// flush writes what the leader recorded and was shipped, as its usage
	// flush does, and returns the key's batch.
	flush := func() fsm.KeyUsageBatch {
		t.Helper()
		u := c.Nodes[ld].Server.API.Usage.Take()
		if u == nil || len(u.Keys) != 1 {
			t.Fatalf("the leader's usage batch: %+v, want the one key's", u)
		}
		env, err := fsm.NewEnvelope(fsm.CmdKeyUsage, time.Now(), u)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Nodes[ld].Server.API.Apply(ctx, env); err != nil {
			t.Fatalf("the usage flush: %v", err)
		}
		return u.Keys[0]
	}
	keyInfo := func() api.KeyInfo {
		t.Helper()
		keys, err := c.Admin(ld).Keys(ctx, acc.ID)
		if err != nil || len(keys) != 1 {
			t.Fatalf("the account's keys: %v %+v", err, keys)
		}
		return keys[0]
	}
	want := func(what, ip string, at time.Time, uses int64) {
		t.Helper()
		k := keyInfo()
		if k.LastUsedIP != ip || k.LastUsedAt == nil || !k.LastUsedAt.Equal(at) || k.UseCount != uses {
			t.Fatalf("%s: last_used_ip %q, last_used_at %v, use_count %d; want %q at %v, %d uses", what, k.LastUsedIP, k.LastUsedAt, k.UseCount, ip, at, uses)
		}
	}

	// Every member has the key before one answers a stale read with it.
	keyID := keyInfo().ID
	for i, nd := range c.Nodes {
		for nd.Server.Node.FSM.Read(func(r store.ReadTx) error { _, err := r.Key(keyID); return err }) != nil {
			if ctx.Err() != nil {
				t.Fatalf("coordinator %d never applied the key", i)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if st, err := c.Admin(ld).ClusterStatus(ctx); err != nil || st.Level != 1 {
		t.Fatalf("a cluster with a coordinator of the release before: %+v %v, want level 1", st, err)
	}
	f := (ld + 1) % 3 // a follower of the new release
	use(f, "127.0.0.3")
	ship(f)
	b := flush()
	if b.LastUsedIP != "" || b.LastUsedAt.IsZero() || b.Count != 1 {
		t.Fatalf("level 1: the follower's shipment reached the leader as %+v, want its use without the address", b)
	}
	want("level 1, a follower's use", "", b.LastUsedAt, 1)
	use(ld, "127.0.0.2")
	if b = flush(); b.LastUsedIP != "127.0.0.2" {
		t.Fatalf("level 1: the leader's own batch %+v, want its client's address (the apply ignores it below level 2)", b)
	}
	want("level 1, the leader's own use", "", b.LastUsedAt, 2)

	// The last coordinator is upgraded: the level rises on every member.
	c.Kill(0)
	c.Nodes[0].Cfg.TestMaxLevel = 0
	c.Restart(0)
	waitAllAtLevel(t, c, 2)
	ld = c.WaitLeader(leaderWait)
	f = (ld + 1) % 3
	use(ld, "127.0.0.2")
	b = flush()
	want("level 2, the leader's own use", "127.0.0.2", b.LastUsedAt, 3)
	use(f, "127.0.0.3")
	ship(f)
	if b = flush(); b.LastUsedIP != "127.0.0.3" {
		t.Fatalf("level 2: the follower's shipment reached the leader as %+v, want its client's address", b)
	}
	want("level 2, a follower's use", "127.0.0.3", b.LastUsedAt, 4)

	// A follower that had not yet applied the raise ships a newer use as
	// at level 1: the key shows that use's time without an address.
	use(ld, "127.0.0.2")
	late := time.Now().UTC().Add(time.Second)
	st, body := (&internalRig{c: c}).post(t, ld, "/internal/usage", c.Secret,
		`{"keys":[{"key_id":"`+keyID+`","last_used_at":"`+late.Format(time.RFC3339Nano)+`","count":1,"entries":[]}]}`)
	if st != http.StatusNoContent {
		t.Fatalf("a follower's shipment without addresses: %d %s", st, body)
	}
	if b = flush(); b.LastUsedIP != "" || !b.LastUsedAt.Equal(late) {
		t.Fatalf("the leader's batch of its use and the newer shipped one: %+v, want the shipped one's time without an address", b)
	}
	want("level 2, a newer use shipped without its address", "", late, 6)
	// The customer's own list says the same.
	var l api.KeyList
	newAPIClient(t, c.URL(ld)).Call(key, "GET", "/v1/account/api-keys", nil, nil).Decode(t, &l)
	if len(l.Data) != 1 || l.Data[0].LastUsedIP != "" || l.Data[0].LastUsedAt == nil || !l.Data[0].LastUsedAt.Equal(late) {
		t.Fatalf("the customer's key list: %+v", l.Data)
	}
}
