package audit

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
)

// TestProbe56EveryOperationAtAFollowerWhileTheLeaderIsPaused: the leader
// stops answering without closing its connections (SIGSTOP) while a
// customer calls every operation /openapi.json lists through each of the two
// followers (reads with the customer's own ticket and webhook ids, writes
// with ids that name nothing and an empty body, so nothing can be made or
// changed), and every read that declares `consistency` once more with
// `consistency=stale`. Each is answered within a few seconds (the followers
// elect a new leader within about a second; a follower gives up on the paused
// one after its forward timeout), whatever the answer: the SPEC's error body
// on every 4xx and 5xx (statusCode the status, error its reason phrase, a
// message, a snake_case code), Retry-After on every 503 (SPEC: "a 429 adds
// Retry-After"; the openapi's 503 declares it), the X-RateLimit-* headers
// and Cache-Control: no-store on every answer. A stale read is answered by
// the follower itself: never a 5xx. probe11_pause_test.go sends tickets and
// ticket reads; this is the rest of the surface (keys and their usage,
// connected apps, catalogue, quotes, actions, custom domains, PTRs…).
func TestProbe56EveryOperationAtAFollowerWhileTheLeaderIsPaused(t *testing.T) {
	r := newLightRig(t)
	ld, followers := r.pausable()
	tk := r.ticket(followers[0], r.keyA, "probe56 pause")
	wh := r.hook(r.keyA, newReceiver(t).URL, "ticket.created")
	type call struct {
		f            int
		method, path string
		stale        bool
	}
	var calls []call
	staleReads := 0
	for _, op := range r.operations() {
		read := op.method == http.MethodGet
		fill := strings.NewReplacer("{id}", "none_probe56", "{ip}", "192.0.2.77", "{snapshotId}", "snap_none", "{action}", "reboot", "{deliveryId}", "dlv_none")
		if read {
			id := "none_probe56"
			switch {
			case strings.HasPrefix(op.path, "/tickets/{id}"):
				id = tk.ID
			case strings.HasPrefix(op.path, "/webhooks/{id}"):
				id = wh.ID
			}
			fill = strings.NewReplacer("{id}", id, "{ip}", "192.0.2.77", "{snapshotId}", "snap_none", "{action}", "reboot", "{deliveryId}", "dlv_none")
		}
		path := "/v1" + fill.Replace(op.path)
		if op.path == "/domains/check" {
			path += "?name=probe56.test"
		}
		for _, f := range followers {
			calls = append(calls, call{f: f, method: op.method, path: path})
			if read && r.apis[f].TakesQuery(op.method, path, "consistency") {
				calls = append(calls, call{f: f, method: op.method, path: path, stale: true})
				staleReads++
			}
		}
	}
	if len(calls) < 100 || staleReads < 40 {
		t.Fatalf("%d calls from /openapi.json, %d of them stale reads; want every operation at both followers, every read of an account's data once more stale", len(calls), staleReads)
	}

	const bound = 8 * time.Second // an election (~1 s here), a forward timeout, slack for a loaded machine
	hc := &http.Client{Timeout: 60 * time.Second}
	problems := make([]string, len(calls))
	statuses := make([]int, len(calls))
	resumed := r.pauseLeader(ld)
	defer resumed()
	// All at once: each is in flight while the followers still forward to
	// the paused leader (or elect another), none waits for the others.
	var wg sync.WaitGroup
	for n, c := range calls {
		wg.Go(func() {
			path := c.path
			if c.stale {
				path += map[bool]string{true: "&", false: "?"}[strings.Contains(path, "?")] + "consistency=stale"
			}
			what := fmt.Sprintf("%s %s at coordinator %d (a follower) with the leader paused", c.method, path, c.f)
			var body io.Reader
			if c.method != http.MethodGet && c.method != http.MethodDelete {
				body = strings.NewReader("{}")
			}
			req, err := http.NewRequest(c.method, r.c.URL(c.f)+path, body)
			if err != nil {
				problems[n] = err.Error()
				return
			}
			req.Header.Set("Authorization", "Bearer "+r.keyA)
			if body != nil {
				req.Header.Set("Content-Type", "application/json")
			}
			resp, b, took, err := timedDo(hc, req)
			if err != nil {
				problems[n] = fmt.Sprintf("%s: no answer after %s: %v", what, took.Round(time.Millisecond), err)
				return
			}
			statuses[n] = resp.StatusCode
			problems[n] = probe56Answer(what, took, bound, c.stale, resp, b)
		})
	}
	wg.Wait()
	resumed()
	counts := map[int]int{}
	for n, pr := range problems {
		counts[statuses[n]]++
		if pr != "" {
			t.Error(pr)
		}
	}
	t.Logf("%d calls with the leader paused; answers by status: %v", len(calls), counts)
	if counts[http.StatusServiceUnavailable] == 0 {
		t.Errorf("no 503 among %d calls at the followers in the first seconds of the pause: the leader was not paused as the test means", len(calls))
	}
}

// pauseLeader pauses the leader ld (SIGSTOP) and waits 200 ms, while the
// followers still take it for the leader; resume (once, whatever calls it
// again) resumes it.
func (r *rig) pauseLeader(ld int) (resume func()) {
	r.c.Nodes[ld].Pause()
	resume = sync.OnceFunc(r.c.Nodes[ld].Resume)
	time.Sleep(200 * time.Millisecond) // the followers still take it for the leader
	return resume
}

// timedDo sends req with hc and reads the whole answer: the answer (its
// body read and closed), the body, and how long the answer's header took.
func timedDo(hc *http.Client, req *http.Request) (*http.Response, []byte, time.Duration, error) {
	start := time.Now()
	resp, err := hc.Do(req)
	took := time.Since(start) // to the answer's header, as the pause probes bound it
	if err != nil {
		return nil, nil, took, err
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, b, took, nil
}

// pausable is the index of the leader (known within 20 s) and of its two
// followers, each follower's channel to the leader open (a ticket of A's
// written through it): for a test that pauses the leader and calls the
// followers.
func (r *rig) pausable() (ld int, followers []int) {
	r.t.Helper()
	ld, f := r.leaderAndFollower()
	followers = []int{f, (ld + 2) % r.c.Len()}
	for _, f := range followers {
		if rep := r.write(f, r.keyA, "POST", "/v1/tickets", api.TicketCreateRequest{Subject: "warm", Message: "up"}); rep.Status != 201 {
			r.t.Fatalf("a ticket through coordinator %d: %s", f, rep)
		}
	}
	return ld, followers
}

var snakeCodeRE = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// probe56Answer is what is wrong with resp (its body b), the answer to what
// after took: "" for nothing.
func probe56Answer(what string, took, bound time.Duration, stale bool, resp *http.Response, b []byte) string {
	var bad []string
	if took > bound {
		bad = append(bad, fmt.Sprintf("answered after %s; want within %s", took.Round(time.Millisecond), bound))
	}
	st := resp.StatusCode
	if st >= 400 {
		var e struct {
			StatusCode *int   `json:"statusCode"`
			Error      string `json:"error"`
			Message    string `json:"message"`
			Code       string `json:"code"`
		}
		if err := json.Unmarshal(b, &e); err != nil || e.StatusCode == nil || *e.StatusCode != st || e.Error != http.StatusText(st) || e.Message == "" || !snakeCodeRE.MatchString(e.Code) {
			bad = append(bad, fmt.Sprintf(`the body is not {"statusCode": %d, "error": %q, "message": "…", "code": "snake_case"}`, st, http.StatusText(st)))
		}
	}
	if st == http.StatusServiceUnavailable || st == http.StatusTooManyRequests {
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || s < 1 {
			bad = append(bad, fmt.Sprintf("Retry-After %q; want whole seconds", resp.Header.Get("Retry-After")))
		}
	}
	if stale && st >= 500 {
		bad = append(bad, "a stale read answered with a 5xx; the follower answers it from its own state")
	}
	for _, h := range []string{"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"} {
		if resp.Header.Get(h) == "" {
			bad = append(bad, "no "+h)
		}
	}
	if resp.Header.Get("Cache-Control") != "no-store" {
		bad = append(bad, fmt.Sprintf("Cache-Control %q; want no-store", resp.Header.Get("Cache-Control")))
	}
	if len(bad) == 0 {
		return ""
	}
	return fmt.Sprintf("%s: %d %.200s: %s", what, st, b, strings.Join(bad, "; "))
}
