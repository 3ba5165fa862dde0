package httpapi

import (
	"context"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/auth"
	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/ids"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/brand"
)

// TestStatsStreamEndsWhenItsKeyNoLongerAllowsTheClient: a running stats
// stream whose key's allow-list is narrowed to exclude the client, or whose
// scopes lose servers:read, ends with one `event: error` carrying the 403 the
// same client's new requests get (StreamRefusal). Before, the stream checked
// only revocation and expiry, and went on sending samples.
//
// The API has no call that edits a key: the test rewrites the stored key
// record (a KeyCreate of the same id under another hash), as an edit would.
func TestStatsStreamEndsWhenItsKeyNoLongerAllowsTheClient(t *testing.T) {
	for _, tc := range []struct {
		name   string
		narrow func(k *fsm.KeyCreate)
		code   string
	}{
		{"allow-list", func(k *fsm.KeyCreate) { k.AllowedCIDRs = []string{"192.0.2.0/24"} }, "ip_not_allowed"},
		{"scope", func(k *fsm.KeyCreate) {
			k.Scopes = slices.DeleteFunc(slices.Clone(k.Scopes), func(s string) bool { return s == api.ScopeServersRead })
		}, "missing_scope"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSrvAPI(t)
			acc := s.newAccount()
			kc := fsm.KeyCreate{Name: "k", Scopes: allServerScopes, AllowedCIDRs: []string{"127.0.0.0/8", "::1/128"}}
			keyID, key := s.addKey(acc, kc)
			id := s.server(acc)
			// taken: the samples the stream took (its callback returned
			// nil for) that the node produced after the key changed. Not
			// the samples read after it: under load many produced before
			// the change are still on their way.
			var changed atomic.Bool
			var taken atomic.Int64
			samples := runningSamples(20 * time.Millisecond)
			s.setStats(func(ctx context.Context, node, vm string, stream bool, iv time.Duration, fn func(api.ServerStats) error) error {
				return samples(ctx, node, vm, stream, iv, func(st api.ServerStats) error {
					after := changed.Load()
					err := fn(st)
					if err == nil && after {
						taken.Add(1)
					}
					return err
				})
			})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			resp := s.openGet(ctx, "/v1/servers/"+id+"/stats?stream=1&interval=1", key)
			defer resp.Body.Close()
			if evs := readEvents(t, resp.Body, 1); len(evs) != 1 || evs[0].name != "stats" {
				t.Fatalf("stream before the change: %d %+v", resp.StatusCode, evs)
			}

			narrowed := kc
			tc.narrow(&narrowed)
			_, hash, prefix := auth.NewKey("snc_")
			narrowed.ID, narrowed.AccountID, narrowed.Hash, narrowed.Prefix = keyID, acc, hash, prefix
			s.apply(fsm.CmdKeyCreate, narrowed)
			changed.Store(true)
			if r := s.call(key, "GET", "/v1/servers/"+id+"/stats", ""); r.status != http.StatusForbidden || r.code() != tc.code {
				t.Fatalf("a new request of the narrowed key: %d %s; want 403 %s", r.status, r.body, tc.code)
			}

			// The stream ends within a few samples, its last event the 403.
			done := make(chan []sseEvent, 1)
			go func() { done <- readEvents(t, resp.Body, 0) }()
			select {
			case evs := <-done:
				if len(evs) == 0 || evs[len(evs)-1].name != "error" || !strings.Contains(evs[len(evs)-1].data, `"code":"`+tc.code+`"`) ||
					!strings.Contains(evs[len(evs)-1].data, `"statusCode":403`) {
					t.Fatalf("the stream ended with %+v; want an error event with the 403 %s", evs, tc.code)
				}
				if n := taken.Load(); n > 0 {
					t.Errorf("the stream sent %d samples the node produced after the key changed: it was not checked per sample", n)
				}
			case <-time.After(5 * time.Second):
				cancel()
				<-done
				t.Fatal("the stats stream still runs 5 s after its key stopped allowing the client")
			}
			_, _ = io.Copy(io.Discard, resp.Body)
		})
	}
}

// TestStatsStreamOfABrandsKey: on a 444host coordinator (scopes vps:*) a
// stats stream opened with a vps:read key goes on sending samples: each
// sample's re-check (StreamRefusal) asks for the scope the route let the
// key in with, in the brand's name. Before, the handler named
// servers:read, which no 444host key holds: every stream there ended at
// its first sample with a 403 missing_scope.
func TestStatsStreamOfABrandsKey(t *testing.T) {
	b := brand.MustGet(brand.H444)
	s := newSrvAPIWith(t, Config{NodeID: "n1", Brand: b})
	acc := s.newAccount()
	key, hash, prefix := auth.NewKey(b.KeyPrefix) // the brand's keys
	s.apply(fsm.CmdKeyCreate, fsm.KeyCreate{ID: ids.New("key", time.Now()), AccountID: acc, Name: "k", Hash: hash, Prefix: prefix,
		Scopes: b.Scopes([]string{api.ScopeServersRead})})
	id := s.server(acc)
	s.setStats(runningSamples(20 * time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp := s.openGet(ctx, "/v1/vps/"+id+"/stats?stream=1&interval=1", key)
	defer resp.Body.Close()
	evs := readEvents(t, resp.Body, 3)
	if resp.StatusCode != http.StatusOK || len(evs) != 3 {
		t.Fatalf("a 444host stats stream: %d %+v, want 3 samples", resp.StatusCode, evs)
	}
	for _, ev := range evs {
		if ev.name != "stats" {
			t.Fatalf("a 444host stats stream: %+v, want samples only", evs)
		}
	}
}
