package audit

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestProbe57MCPAndOAuthAtAFollowerWhileTheLeaderIsPaused: the leader stops
// answering without closing its connections (SIGSTOP) while a client calls,
// through each of the two followers, every write-side MCP tool (on a session
// opened there before the pause: ids that name nothing, an empty body, and a
// ticket of a subject of its own) and every OAuth endpoint that writes (a
// refresh-token exchange, a revocation, a registration, a device
// authorization) or reads on the leader (the consent page). Each is answered
// within a few seconds: an MCP call with its result (an error result with the
// operation's 503 — leader_unreachable or no_leader — carries
// `_meta["hostplane/retry_after"]`, the seconds of the operation's
// Retry-After, as a /v1 client gets the header), an OAuth call with its
// answer or a 503 with Retry-After and Cache-Control: no-store; the
// well-known documents are answered 200 by the followers themselves. After
// the resume nothing is half-applied: a ticket exists exactly when its call
// answered it made, a refresh token refused with a 503 still works once (one
// that was exchanged is spent), an access token whose revocation was a 503
// still works (one revoked is a 401). probe56_pause_test.go covers /v1.
func TestProbe57MCPAndOAuthAtAFollowerWhileTheLeaderIsPaused(t *testing.T) {
	p := newPausedOAuth(t, "probe57pause")
	r, ld, followers, o, client, authorize := p.r, p.ld, p.followers, p.o, p.client, p.authorize
	const cb = pausedOAuthCallback

	type mcpCall struct {
		f          int
		tool, args string
		subject    string // a ticket's, for create_ticket
	}
	var mcps []mcpCall
	sessions := map[int]*probe56MCP{}
	type grant struct{ access, refresh string }
	refreshes, revokes := map[int]grant{}, map[int]grant{}
	for _, f := range followers {
		s := newProbe56MCP(t, r.c.URL(f)+"/mcp", r.keyA)
		sessions[f] = s
		list := s.tools(t)
		for _, tool := range list.Tools {
			if tool.Annotations.ReadOnly {
				continue
			}
			args := map[string]any{}
			for _, req := range tool.InputSchema.Required {
				switch req {
				case "body":
					args[req] = map[string]any{}
				case "action":
					args[req] = "reboot"
				default:
					args[req] = "none_probe57"
				}
			}
			raw, _ := json.Marshal(args)
			mcps = append(mcps, mcpCall{f: f, tool: tool.Name, args: string(raw)})
		}
		for n := range 3 {
			subject := fmt.Sprintf("probe57 pause %d/%d", f, n)
			raw, _ := json.Marshal(map[string]any{"body": map[string]any{"subject": subject, "message": "m"}})
			mcps = append(mcps, mcpCall{f: f, tool: "create_ticket", args: string(raw), subject: subject})
		}
		a, rf := o.connect(client, cb, r.keyA, "account:read")
		refreshes[f] = grant{a, rf}
		a, rf = o.connect(client, cb, r.keyA, "account:read")
		revokes[f] = grant{a, rf}
	}
	if len(mcps) < 40 {
		t.Fatalf("%d MCP calls; want every write tool at both followers", len(mcps))
	}
	type oauthCall struct {
		f                         int
		name, method, path, ctype string
		body                      string
		doc                       bool // a well-known document: the follower's own, 200
	}
	form := "application/x-www-form-urlencoded"
	var oauths []oauthCall
	for _, f := range followers {
		reg, _ := json.Marshal(map[string]any{"client_name": "probe57 paused", "redirect_uris": []string{cb}, "token_endpoint_auth_method": "none"})
		oauths = append(oauths,
			oauthCall{f: f, name: "refresh", method: "POST", path: "/oauth/token", ctype: form, body: url.Values{"grant_type": {"refresh_token"}, "client_id": {client}, "refresh_token": {refreshes[f].refresh}}.Encode()},
			oauthCall{f: f, name: "revoke", method: "POST", path: "/oauth/revoke", ctype: form, body: url.Values{"client_id": {client}, "token": {revokes[f].access}}.Encode()},
			oauthCall{f: f, name: "register", method: "POST", path: "/oauth/register", ctype: "application/json", body: string(reg)},
			oauthCall{f: f, name: "device authorization", method: "POST", path: "/oauth/device_authorization", ctype: form, body: url.Values{"client_id": {client}, "scope": {"account:read"}}.Encode()},
			oauthCall{f: f, name: "consent page", method: "GET", path: authorize},
			oauthCall{f: f, name: "as metadata", method: "GET", path: "/.well-known/oauth-authorization-server", doc: true},
			oauthCall{f: f, name: "resource metadata", method: "GET", path: "/.well-known/oauth-protected-resource/mcp", doc: true},
		)
	}

	const bound = 10 * time.Second // an election, a forward timeout, slack for a loaded machine
	hc := &http.Client{Timeout: 60 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	mcpProblems, mcpOK, mcp503 := make([]string, len(mcps)), make([]bool, len(mcps)), 0
	oauthProblems, oauthStatus := make([]string, len(oauths)), make([]int, len(oauths))
	var mu sync.Mutex
	resumed := r.pauseLeader(ld)
	defer resumed()
	var wg sync.WaitGroup
	for n, c := range mcps {
		wg.Go(func() {
			what := fmt.Sprintf("MCP %s %s at coordinator %d (a follower) with the leader paused", c.tool, c.args, c.f)
			start := time.Now()
			res, err := probe57ToolCall(hc, sessions[c.f], n+1000, c.tool, c.args)
			took := time.Since(start)
			switch {
			case err != nil:
				mcpProblems[n] = fmt.Sprintf("%s: after %s: %v", what, took.Round(time.Millisecond), err)
				return
			case took > bound:
				mcpProblems[n] = fmt.Sprintf("%s: answered after %s; want within %s", what, took.Round(time.Millisecond), bound)
			}
			mcpOK[n] = !res.IsError
			if !res.IsError {
				return
			}
			var e struct {
				StatusCode int    `json:"statusCode"`
				Code       string `json:"code"`
				Message    string `json:"message"`
			}
			if json.Unmarshal([]byte(res.text()), &e) != nil || e.StatusCode == 0 || e.Code == "" || e.Message == "" {
				mcpProblems[n] = fmt.Sprintf("%s: error result %.200s; want the operation's error body", what, res.text())
				return
			}
			if e.StatusCode == http.StatusServiceUnavailable {
				mu.Lock()
				mcp503++
				mu.Unlock()
				if ra, _ := res.Meta["hostplane/retry_after"].(float64); ra < 1 || (e.Code != "leader_unreachable" && e.Code != "no_leader") {
					mcpProblems[n] = fmt.Sprintf("%s: %.200s with _meta %v; want leader_unreachable or no_leader and hostplane/retry_after in whole seconds", what, res.text(), res.Meta)
				}
			}
			if e.StatusCode >= 500 && e.StatusCode != http.StatusServiceUnavailable {
				mcpProblems[n] = fmt.Sprintf("%s: %.200s; want a 503 the client may retry", what, res.text())
			}
		})
	}
	for n, c := range oauths {
		wg.Go(func() {
			what := fmt.Sprintf("%s (%s %s) at coordinator %d (a follower) with the leader paused", c.name, c.method, c.path, c.f)
			req, err := http.NewRequest(c.method, r.c.URL(c.f)+c.path, strings.NewReader(c.body))
			if err != nil {
				oauthProblems[n] = err.Error()
				return
			}
			if c.ctype != "" {
				req.Header.Set("Content-Type", c.ctype)
			}
			resp, b, took, err := timedDo(hc, req)
			if err != nil {
				oauthProblems[n] = fmt.Sprintf("%s: no answer after %s: %v", what, took.Round(time.Millisecond), err)
				return
			}
			oauthStatus[n] = resp.StatusCode
			var bad []string
			if took > bound {
				bad = append(bad, fmt.Sprintf("answered after %s; want within %s", took.Round(time.Millisecond), bound))
			}
			switch st := resp.StatusCode; {
			case c.doc && st != http.StatusOK:
				bad = append(bad, "a well-known document is the follower's own: want 200")
			case st == http.StatusServiceUnavailable:
				if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || s < 1 {
					bad = append(bad, fmt.Sprintf("Retry-After %q; want whole seconds", resp.Header.Get("Retry-After")))
				}
				if resp.Header.Get("Cache-Control") != "no-store" {
					bad = append(bad, fmt.Sprintf("Cache-Control %q; want no-store", resp.Header.Values("Cache-Control")))
				}
			case st >= 500:
				bad = append(bad, "want a 503 the client may retry, or the answer")
			}
			if len(bad) > 0 {
				oauthProblems[n] = fmt.Sprintf("%s: %d %.200s: %s", what, resp.StatusCode, b, strings.Join(bad, "; "))
			}
		})
	}
	wg.Wait()
	resumed()
	for _, pr := range append(mcpProblems, oauthProblems...) {
		if pr != "" {
			t.Error(pr)
		}
	}
	counts := map[int]int{}
	for _, st := range oauthStatus {
		counts[st]++
	}
	t.Logf("%d MCP calls with the leader paused, %d of them a 503; OAuth answers by status: %v", len(mcps), mcp503, counts)
	if mcp503 == 0 || counts[http.StatusServiceUnavailable] == 0 {
		t.Errorf("no 503 among the calls at the followers in the first seconds of the pause: the leader was not paused as the test means")
	}

	// After the resume: nothing half-applied.
	if _, err := r.c.LeaderIndex(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	var tickets struct {
		Data []struct {
			Subject string `json:"subject"`
		} `json:"data"`
	}
	r.get(t, followers[0], r.keyA, "/v1/tickets?limit=200", &tickets)
	for n, c := range mcps {
		if c.subject == "" {
			continue
		}
		made := 0
		for _, tk := range tickets.Data {
			if tk.Subject == c.subject {
				made++
			}
		}
		if want := map[bool]int{true: 1, false: 0}[mcpOK[n]]; made != want {
			t.Errorf("ticket %q: %d made after the resume; its call answered ok=%v, so want %d", c.subject, made, mcpOK[n], want)
		}
	}
	for n, c := range oauths {
		switch c.name {
		case "refresh":
			st, _ := o.token(url.Values{"grant_type": {"refresh_token"}, "client_id": {client}, "refresh_token": {refreshes[c.f].refresh}})
			if spent := oauthStatus[n] == http.StatusOK; spent != (st != http.StatusOK) {
				t.Errorf("refresh token exchanged at %d during the pause (answered %d): after the resume it answers %d", c.f, oauthStatus[n], st)
			}
		case "revoke":
			st := bearer(t, r.c.URL(followers[0]), revokes[c.f].access, "GET", "/v1/account")
			if revoked := oauthStatus[n] == http.StatusOK; revoked != (st == http.StatusUnauthorized) {
				t.Errorf("access token revoked at %d during the pause (answered %d): after the resume /v1/account answers %d", c.f, oauthStatus[n], st)
			}
		}
	}
}

// probe57Result is a tools/call result with its _meta.
type probe57Result struct {
	probe56Result
	Meta map[string]any `json:"_meta"`
}

// probe57ToolCall calls tool with args on s's session as request id, once,
// without failing the test (it runs beside others): the result, or why
// there is none.
func probe57ToolCall(hc *http.Client, s *probe56MCP, id int, tool, args string) (probe57Result, error) {
	var res probe57Result
	msg := fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":%q,"arguments":%s}}`, id, tool, args)
	req, err := http.NewRequest(http.MethodPost, s.endpoint, strings.NewReader(msg))
	if err != nil {
		return res, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", "Bearer "+s.key)
	req.Header.Set("Mcp-Session-Id", s.session)
	req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
	resp, err := hc.Do(req)
	if err != nil {
		return res, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return res, fmt.Errorf("HTTP %s: %.200s", resp.Status, b)
	}
	var data []string
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 8<<20)
		for sc.Scan() {
			if d, ok := strings.CutPrefix(sc.Text(), "data:"); ok {
				data = append(data, strings.TrimSpace(d))
			}
		}
	} else {
		b, _ := io.ReadAll(resp.Body)
		data = append(data, string(b))
	}
	for _, d := range data {
		var rpc struct {
			ID     int             `json:"id"`
			Result json.RawMessage `json:"result"`
			Error  json.RawMessage `json:"error"`
		}
		if json.Unmarshal([]byte(d), &rpc) != nil || rpc.ID != id {
			continue
		}
		if rpc.Error != nil {
			return res, fmt.Errorf("JSON-RPC error %s", rpc.Error)
		}
		err := json.Unmarshal(rpc.Result, &res)
		return res, err
	}
	return res, fmt.Errorf("no answer to request %d in %d messages", id, len(data))
}
