package audit

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/client"
)

// TestProbe12KeyRevokedWhileInUse: a key that is revoked (DELETE
// /v1/account/api-keys/:id with another key of the account) while requests
// with it are in flight on the three coordinators, as a leaked key a
// customer revokes is being used.
//
// README (Customers' own API keys): after the revocation "the next request
// with it is a 401 on every coordinator" (Read consistency: a key whose
// revocation was acknowledged before the request was sent is refused). So
// every request sent after the 204 is a 401 revoked_api_key, through each
// coordinator; those in flight at the revoke are a 200 or that 401.
//
// A live stats stream (GET /v1/servers/:id/stats?stream=1) opened with the
// key before is the key in use too: it ends once the key is revoked (an
// `event: error` naming the revocation, then the end), within a few of its
// intervals, rather than streaming the server's figures to whoever holds the
// revoked key for as long as it cares to read. Before, it went on: the key
// was checked once, when the stream was opened.
func TestProbe12KeyRevokedWhileInUse(t *testing.T) {
	r := sharedRig(t, "audit")
	r.c.Credit(r.ctx, r.accA.ID, serverPrice)
	var so api.ServerOrder
	r.ordered(t, "A's server", 0, r.keyA, "/v1/servers", serverBody("probe12-keys"), &so, 60*time.Second)
	n := r.c.Len()

	// Made (keyOfA) and revoked (below) as a client does in an election:
	// sent again after a leadership 503 where that makes one key and one
	// revocation.
	leakedKey := r.keyOfA(t, api.KeyCreateRequest{Name: "leaked",
		Scopes: []string{api.ScopeAccountRead, api.ScopeServersRead}, RateLimitPerMin: 6000})
	keys, err := r.c.AnyAlive(nil).Admin().Keys(r.ctx, r.accA.ID)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(keys, func(k api.KeyInfo) bool {
		return k.Name == "leaked" && k.Prefix != "" && strings.HasPrefix(leakedKey, k.Prefix)
	})
	if i < 0 {
		t.Fatalf("no key named leaked among A's: %+v", keys)
	}
	leaked := api.KeyCreated{Key: leakedKey, Info: keys[i]}

	// The stream, through a follower, 1 s between samples.
	f := r.follower()
	ctx, cancel := context.WithCancel(r.ctx)
	defer cancel()
	resp := openStream(t, ctx, r.c.URL(f)+"/v1/servers/"+so.Server.ID+"/stats?stream=1&interval=1",
		map[string]string{"Authorization": "Bearer " + leaked.Key}, "stats stream with the key")
	type line struct {
		text string
		at   time.Time
	}
	lines := make(chan line, 1000)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- line{sc.Text(), time.Now()}
		}
	}()
	// A first sample before the revoke.
	for first := time.After(10 * time.Second); ; {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("the stream ended before its first sample")
			}
			if l.text != "event: stats" {
				continue
			}
		case <-first:
			t.Fatal("no sample within 10 s")
		}
		break
	}

	// Requests with the key on every coordinator while it is revoked.
	type sent struct {
		at     time.Time // when it was sent
		coord  int
		status int
		code   string
	}
	var (
		mu   sync.Mutex
		log  []sent
		stop = make(chan struct{})
		wg   sync.WaitGroup
	)
	for i := range n {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				at := time.Now()
				rep, err := r.apis[i].Try(leaked.Key, "GET", "/v1/account", nil, nil)
				if err != nil {
					continue
				}
				mu.Lock()
				log = append(log, sent{at, i, rep.Status, rep.Code()})
				mu.Unlock()
				time.Sleep(40 * time.Millisecond) // under the key's 100 a second
			}
		})
	}
	time.Sleep(300 * time.Millisecond)
	// A revoke sent again revokes nothing more (answered as the first).
	f = r.follower()
	rep := r.limited(f, r.send(f, r.keyA, "DELETE", "/v1/account/api-keys/"+leaked.Info.ID, nil, nil,
		func(string, any, http.Header) bool { return true }))
	revoked := time.Now()
	if rep.Status/100 != 2 {
		t.Fatalf("revoke: %s", rep)
	}
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()

	after := map[int]int{}
	for _, s := range log {
		switch {
		case s.status == 200 && s.at.After(revoked):
			t.Errorf("a request with the key sent %s after its revoke's answer, through coordinator %d: 200; want 401", s.at.Sub(revoked), s.coord)
		case s.status == 401 && s.code == "revoked_api_key":
			if s.at.After(revoked) {
				after[s.coord]++
			}
		case s.status == 200:
		case s.status == 503: // an election: not served
		default:
			t.Errorf("a request with the key through coordinator %d: %d %s; want 200 or 401 revoked_api_key", s.coord, s.status, s.code)
		}
	}
	for i := range n {
		if after[i] == 0 {
			t.Errorf("no request with the key through coordinator %d after the revoke (of %d sent): the probe measured nothing there", i, len(log))
		}
	}
	t.Logf("%d requests with the key, %v refused after the revoke per coordinator", len(log), after)

	// The stream ends within a few intervals of the revoke.
	var tail []string
	var ended time.Time
	for deadline := time.After(8 * time.Second); ended.IsZero(); {
		select {
		case l, ok := <-lines:
			if !ok {
				ended = time.Now()
				break
			}
			if l.at.After(revoked) && len(tail) < 40 {
				tail = append(tail, l.text)
			}
		case <-deadline:
			t.Fatalf("the stats stream of the revoked key still runs 8 s after the revoke; lines after it: %q", tail)
		}
	}
	if s := strings.Join(tail, "\n"); !strings.Contains(s, "event: error") || !strings.Contains(s, "revoked_api_key") {
		t.Errorf("the stats stream of the revoked key ended %s after the revoke without an error event naming it: %q", ended.Sub(revoked).Round(time.Millisecond), tail)
	}
	t.Logf("the stats stream ended %s after the revoke", ended.Sub(revoked).Round(time.Millisecond))
}

// TestProbe12MCPStreamOfRevokedKey: the GET stream of an MCP session (the
// session's server-to-client messages), opened with an API key that is then
// revoked, ends within a few seconds, as every POST of the session is then a
// 401 (TestMCPSessionsOutsideIn). Before, it stayed open for as long as the
// client held it: the key was checked once, when it opened.
func TestProbe12MCPStreamOfRevokedKey(t *testing.T) {
	r := sharedMCPRig(t, "mcp")
	ep := r.c.URL(r.follower()) + "/mcp"
	k, err := r.c.AnyAlive(nil).Admin().CreateKey(r.ctx, r.accA.ID, api.KeyCreateRequest{Name: "soon revoked", Scopes: []string{api.ScopeAccountRead}})
	if err != nil {
		t.Fatal(err)
	}
	m := &mcpSession{t: t, endpoint: ep, token: k.Key}
	m.initialize()
	ctx, cancel := context.WithCancel(r.ctx)
	defer cancel()
	resp := openStream(t, ctx, ep, map[string]string{"Accept": "text/event-stream", "Authorization": "Bearer " + k.Key,
		"Mcp-Session-Id": m.session, "MCP-Protocol-Version": "2025-06-18"}, "the session's GET stream")
	ended := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, resp.Body); close(ended) }()
	if _, err := r.c.AnyAlive(nil).Admin().RevokeKey(r.ctx, k.Info.ID); err != nil {
		t.Fatal(err)
	}
	revoked := time.Now()
	select {
	case <-ended:
		t.Logf("the stream ended %s after the revoke", time.Since(revoked).Round(time.Millisecond))
	case <-time.After(10 * time.Second):
		t.Errorf("the GET stream of the revoked key's MCP session is still open 10 s after the revoke")
	}
}

// openStream GETs url with the headers (again after an election's 503:
// getAgainAfter503) and fails the test, naming what, unless it answers 200;
// the caller reads the body (a stream), closed when the test ends.
func openStream(t *testing.T, ctx context.Context, url string, headers map[string]string, what string) *http.Response {
	t.Helper()
	resp := getAgainAfter503(t, what, func() (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
		if err != nil {
			return nil, err
		}
		for h, v := range headers {
			req.Header.Set(h, v)
		}
		return http.DefaultClient.Do(req)
	})
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != 200 {
		t.Fatalf("%s: %d", what, resp.StatusCode)
	}
	return resp
}

// getAgainAfter503 sends a GET (get) and, while it is answered 503 with
// Retry-After (an election: the read was not served), sends it again after
// the pause asked (1 to 5 s), for up to 15 s from the first send
// (client.DefaultElectionWait), as pkg/client's Resend does for a read; it
// returns the last answer. An error sending fails t, naming what.
func getAgainAfter503(t testing.TB, what string, get func() (*http.Response, error)) *http.Response {
	t.Helper()
	for end := time.Now().Add(client.DefaultElectionWait); ; {
		resp, err := get()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		secs, err := strconv.Atoi(resp.Header.Get("Retry-After"))
		pause := time.Duration(min(max(secs, 1), 5)) * time.Second
		if resp.StatusCode != http.StatusServiceUnavailable || err != nil || !time.Now().Add(pause).Before(end) {
			return resp
		}
		resp.Body.Close()
		t.Logf("%s: 503: sent again in %s", what, pause)
		time.Sleep(pause)
	}
}
