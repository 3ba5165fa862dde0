package audit

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestOAuthRefusalsAtAFollowerWithoutALeaderAreOAuthShaped: a follower that
// cannot reach the leader (the leader paused with SIGSTOP), and one left
// without a quorum (the leader and the other follower paused), answers each
// endpoint in its own family's error shape, as its own refusals are: the
// OAuth protocol endpoints (token, revocation, registration, device
// authorization) RFC 6749's {"error", "error_description"} with no /v1
// member, the consent pages an HTML page, /v1 and an MCP tool call the /v1
// body ({"statusCode", "code", "message"}; the tool call as its error
// result or /mcp's own answer); each 503 with Retry-After in whole seconds,
// Cache-Control: no-store and an X-Request-Id. The well-known documents stay
// the follower's own 200. Before, a forwarded OAuth call that failed was
// answered with the /v1 body (forward.go's ErrorHandler, the forwarder's
// no_leader), which an OAuth client reads as no error code at all.
func TestOAuthRefusalsAtAFollowerWithoutALeaderAreOAuthShaped(t *testing.T) {
	p := newPausedOAuth(t, "gaps58shape")
	r, ld, followers, client, authorize := p.r, p.ld, p.followers, p.client, p.authorize
	const cb = pausedOAuthCallback
	sessions := map[int]*probe56MCP{}
	for _, f := range followers {
		sessions[f] = newProbe56MCP(t, r.c.URL(f)+"/mcp", r.keyA)
	}

	type call struct {
		family                    string // "oauth", "page", "v1", "mcp", "doc"
		name, method, path, ctype string
		body                      string
	}
	form := "application/x-www-form-urlencoded"
	reg, _ := json.Marshal(map[string]any{"client_name": "gaps58", "redirect_uris": []string{cb}, "token_endpoint_auth_method": "none"})
	calls := []call{
		{family: "oauth", name: "token (refresh)", method: "POST", path: "/oauth/token", ctype: form, body: url.Values{"grant_type": {"refresh_token"}, "client_id": {client}, "refresh_token": {"no-such-refresh-token"}}.Encode()},
		{family: "oauth", name: "token (device code)", method: "POST", path: "/oauth/token", ctype: form, body: url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "client_id": {client}, "device_code": {"no-such-device-code"}}.Encode()},
		{family: "oauth", name: "revoke", method: "POST", path: "/oauth/revoke", ctype: form, body: url.Values{"client_id": {client}, "token": {"no-such-token"}}.Encode()},
		{family: "oauth", name: "register", method: "POST", path: "/oauth/register", ctype: "application/json", body: string(reg)},
		{family: "oauth", name: "device authorization", method: "POST", path: "/oauth/device_authorization", ctype: form, body: url.Values{"client_id": {client}, "scope": {"account:read"}}.Encode()},
		{family: "page", name: "consent page", method: "GET", path: authorize},
		{family: "page", name: "device page", method: "GET", path: "/oauth/device"},
		{family: "v1", name: "account", method: "GET", path: "/v1/account"},
		{family: "mcp", name: "create_ticket tool"},
		{family: "doc", name: "as metadata", method: "GET", path: "/.well-known/oauth-authorization-server"},
	}
	hc := &http.Client{Timeout: 60 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	// check calls c at coordinator f and says what is wrong with its answer
	// ("" for nothing); must503: the answer may only be a 503 (no quorum).
	check := func(f int, c call, must503 bool, n int) (problem string, status int) {
		what := fmt.Sprintf("%s (%s %s) at follower %d", c.name, c.method, c.path, f)
		if c.family == "mcp" {
			args, _ := json.Marshal(map[string]any{"body": map[string]any{"subject": fmt.Sprintf("gaps58 %d", n), "message": "m"}})
			res, err := probe57ToolCall(hc, sessions[f], 5800+n, "create_ticket", string(args))
			if err != nil {
				// /mcp's own answer (its count of the call at the leader
				// failed): the /v1 body.
				if msg := err.Error(); strings.HasPrefix(msg, "HTTP 503") && strings.Contains(msg, `"statusCode":503`) && strings.Contains(msg, `"code":"`) {
					return "", http.StatusServiceUnavailable
				}
				return fmt.Sprintf("%s: %v; want an error result or /mcp's 503 with the /v1 body", what, err), 0
			}
			if !res.IsError {
				if must503 {
					return what + ": a ticket made without a quorum", http.StatusOK
				}
				return "", http.StatusOK
			}
			var e struct {
				StatusCode int    `json:"statusCode"`
				Code       string `json:"code"`
				Message    string `json:"message"`
			}
			if json.Unmarshal([]byte(res.text()), &e) != nil || e.Code == "" || e.Message == "" || (must503 && e.StatusCode != http.StatusServiceUnavailable) {
				return fmt.Sprintf("%s: error result %.300s; want the /v1 body of a 503", what, res.text()), e.StatusCode
			}
			return "", e.StatusCode
		}
		req, err := http.NewRequest(c.method, r.c.URL(f)+c.path, strings.NewReader(c.body))
		if err != nil {
			return err.Error(), 0
		}
		if c.ctype != "" {
			req.Header.Set("Content-Type", c.ctype)
		}
		if c.family == "v1" {
			req.Header.Set("Authorization", "Bearer "+r.keyA)
		}
		resp, b, took, err := timedDo(hc, req)
		if err != nil {
			return fmt.Sprintf("%s: no answer after %s: %v", what, took.Round(time.Millisecond), err), 0
		}
		st := resp.StatusCode
		var bad []string
		if c.family == "doc" {
			if st != http.StatusOK {
				bad = append(bad, "a well-known document is the follower's own: want 200")
			}
			if len(bad) > 0 {
				return fmt.Sprintf("%s: %d %.300s: %s", what, st, b, strings.Join(bad, "; ")), st
			}
			return "", st
		}
		if must503 && st != http.StatusServiceUnavailable {
			bad = append(bad, "want 503: the follower has no quorum")
		}
		if st >= 400 {
			var m map[string]any
			jsonErr := json.Unmarshal(b, &m)
			ct := resp.Header.Get("Content-Type")
			switch c.family {
			case "oauth":
				code, _ := m["error"].(string)
				desc, _ := m["error_description"].(string)
				_, v1 := m["statusCode"]
				if jsonErr != nil || !snakeCodeRE.MatchString(code) || desc == "" || v1 || !strings.HasPrefix(ct, "application/json") {
					bad = append(bad, `the body is not RFC 6749's {"error": "code", "error_description": "…"}`)
				}
				if st == http.StatusServiceUnavailable && code != "temporarily_unavailable" {
					bad = append(bad, fmt.Sprintf("error %q; a 503 is temporarily_unavailable", code))
				}
			case "page":
				if !strings.HasPrefix(ct, "text/html") || !strings.Contains(string(b), "<html") {
					bad = append(bad, fmt.Sprintf("Content-Type %q: want the consent pages' HTML error page", ct))
				}
			case "v1":
				code, _ := m["code"].(string)
				sc, _ := m["statusCode"].(float64)
				if jsonErr != nil || !snakeCodeRE.MatchString(code) || int(sc) != st {
					bad = append(bad, `the body is not /v1's {"statusCode", "code", "message"}`)
				}
			}
		}
		if st == http.StatusServiceUnavailable {
			if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || s < 1 {
				bad = append(bad, fmt.Sprintf("Retry-After %q; want whole seconds", resp.Header.Get("Retry-After")))
			}
			if cc := resp.Header.Values("Cache-Control"); len(cc) != 1 || cc[0] != "no-store" {
				bad = append(bad, fmt.Sprintf("Cache-Control %q; want no-store", cc))
			}
			if resp.Header.Get("X-Request-Id") == "" {
				bad = append(bad, "no X-Request-Id")
			}
		}
		if st >= 500 && st != http.StatusServiceUnavailable {
			bad = append(bad, "want a 503 the client may retry, or the answer")
		}
		if len(bad) > 0 {
			return fmt.Sprintf("%s: %d %.300s: %s", what, st, b, strings.Join(bad, "; ")), st
		}
		return "", st
	}
	run := func(phase string, fs []int, must503 bool) map[int]int {
		var mu sync.Mutex
		statuses := map[int]int{}
		var wg sync.WaitGroup
		n := 0
		for _, f := range fs {
			for _, c := range calls {
				n++
				k := n
				wg.Go(func() {
					pr, st := check(f, c, must503, k)
					mu.Lock()
					defer mu.Unlock()
					statuses[st]++
					if pr != "" {
						t.Errorf("%s: %s", phase, pr)
					}
				})
			}
		}
		wg.Wait()
		t.Logf("%s: answers by status %v", phase, statuses)
		return statuses
	}

	// The leader paused: the followers still take it for the leader, then
	// elect another; every answer meanwhile is the endpoint's own or a 503
	// in its shape.
	resumed := r.pauseLeader(ld)
	run("the leader paused", followers, false)
	resumed()

	// No quorum: the leader and one follower paused; the other answers
	// every forwarded call with a 503, first while it still takes the
	// paused coordinator for the leader (the forward fails), then once it
	// knows no leader (it forwards nothing). Right after the resume the
	// ex-leader may still say it leads: wait until all three name one
	// leader in one term, or "alone" may be the real leader (it then
	// answers from its own state, not 503).
	if err := r.c.WaitSettled(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	ld, err := r.c.LeaderIndex(30 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	alone := (ld + 1) % r.c.Len()
	other := (ld + 2) % r.c.Len()
	if rep := r.write(alone, r.keyA, "POST", "/v1/tickets", map[string]string{"subject": "warm", "message": "up"}); rep.Status != 201 {
		t.Fatalf("a ticket through coordinator %d: %s", alone, rep)
	}
	sessions[alone] = newProbe56MCP(t, r.c.URL(alone)+"/mcp", r.keyA)
	r.c.Nodes[other].Pause()
	defer r.c.Nodes[other].Resume()
	resumeLeader := r.pauseLeader(ld)
	defer resumeLeader()
	run("no quorum, the paused leader still known", []int{alone}, true)
	var ready struct {
		LeaderID string `json:"leader_id"`
	}
	for end := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		resp, err := hc.Get(r.c.URL(alone) + "/readyz")
		if err == nil {
			ready.LeaderID = "?"
			_ = json.NewDecoder(resp.Body).Decode(&ready)
			resp.Body.Close()
			if ready.LeaderID == "" {
				break
			}
		}
		if time.Now().After(end) {
			t.Fatalf("coordinator %d still names a leader (%q) 30 s after the others were paused", alone, ready.LeaderID)
		}
	}
	run("no quorum, no leader known", []int{alone}, true)
}

// pausedOAuth is a light rig (one --public-url) ready for a test that pauses
// its leader and calls OAuth through the followers: the leader's index and
// its two followers' (each with its channel open), a public client
// registered through the first follower with pausedOAuthCallback, and a
// consent page request of that client for account:read.
type pausedOAuth struct {
	r                 *rig
	ld                int
	followers         []int
	o                 oauthSide
	client, authorize string
}

// pausedOAuthCallback is pausedOAuth's client's one redirect URI.
const pausedOAuthCallback = "http://127.0.0.1:9/cb"

func newPausedOAuth(t *testing.T, prefix string) pausedOAuth {
	t.Helper()
	p := pausedOAuth{r: lightRig(t, prefix, "--public-url", "https://api.audit.example")}
	p.ld, p.followers = p.r.pausable()
	p.o = oauthSide{t: t, base: p.r.c.URL(p.followers[0])}
	p.client = p.o.register(pausedOAuthCallback)
	_, challenge := pkce()
	p.authorize = "/oauth/authorize?" + url.Values{"response_type": {"code"}, "client_id": {p.client}, "redirect_uri": {pausedOAuthCallback},
		"state": {"st"}, "code_challenge": {challenge}, "code_challenge_method": {"S256"}, "scope": {"account:read"}}.Encode()
	return p
}
