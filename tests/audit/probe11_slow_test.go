package audit

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// TestProbe11SlowClientsAtAFollower: a follower reads a write's body before it
// forwards it on its one channel to the leader, so clients at a follower that
// send their bodies at 1 byte a second (40 of them, never finishing) or give
// up half-way (20) hold up no other customer's writes through that follower
// or the leader: every ticket another account opens meanwhile (sequentially,
// for 6 s, through each) is made within 2 s. The dribblers get the JSON 408
// body_timeout within the body timeout (4 s here) and slack; nothing of theirs
// is made; once they are gone the follower's and the leader's goroutines are
// back near where they were (nothing is left waiting on the channel). A body
// over 1 MiB sent to the follower is the leader's 413 JSON (the same code and
// message, with the key's X-RateLimit-* headers), announced or chunked.
func TestProbe11SlowClientsAtAFollower(t *testing.T) {
	r := lightRig(t, "probe11slow", "--http-body-timeout", "4s")
	ld, err := r.c.LeaderIndex(20 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	f := (ld + 1) % r.c.Len()
	open := func(i int, subject string) framework.Reply {
		return r.apis[i].Call(r.keyB, "POST", "/v1/tickets", api.TicketCreateRequest{Subject: subject, Message: "m"}, nil)
	}
	for _, i := range []int{ld, f} {
		if rep := r.write(i, r.keyB, "POST", "/v1/tickets", api.TicketCreateRequest{Subject: "warm", Message: "m"}); rep.Status != 201 {
			t.Fatalf("a ticket through coordinator %d: %s", i, rep)
		}
	}
	goroutines := func(i int) float64 { return framework.Metrics(t, r.c.Nodes[i].MetricsURL())["go_goroutines"] }
	before := map[int]float64{ld: goroutines(ld), f: goroutines(f)}

	u, _ := url.Parse(r.c.URL(f))
	body := `{"subject":"dribbled","message":"` + strings.Repeat("d", 1000) + `"}`
	head := fmt.Sprintf("POST /v1/tickets HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", u.Host, r.keyA, len(body))
	const (
		dribblers = 40
		quitters  = 20
		bound     = 4*time.Second + 3*time.Second // the body timeout and slack
	)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var ended []time.Duration
	for n := range dribblers + quitters {
		wg.Go(func() {
			conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
			if err != nil {
				t.Error(err)
				return
			}
			if n >= dribblers {
				// Half the body at once, then the client gives up.
				defer conn.Close()
				_, _ = io.WriteString(conn, head+body[:len(body)/2])
				time.Sleep(time.Second)
				return
			}
			took, status, err := dribble(conn, head, body, time.Second, bound+5*time.Second)
			mu.Lock()
			defer mu.Unlock()
			ended = append(ended, took)
			switch {
			case err != nil:
				t.Errorf("a body dribbled to coordinator %d (a follower): %v", f, err)
			case took > bound || !strings.Contains(status, " 408 "):
				t.Errorf("a body dribbled to coordinator %d (a follower): %q after %s; want 408 within %s", f, status, took.Round(time.Millisecond), bound)
			}
		})
	}
	// Meanwhile B opens tickets one after another through the follower and
	// through the leader.
	var worst time.Duration
	opened := 0
	for end := time.Now().Add(6 * time.Second); time.Now().Before(end); {
		for _, i := range []int{f, ld} {
			start := time.Now()
			rep := open(i, "meanwhile")
			took := time.Since(start)
			worst = max(worst, took)
			opened++
			if rep.Status != 201 || took > 2*time.Second {
				t.Errorf("B's ticket through coordinator %d while A's clients dribble at the follower: %s after %s; want 201 within 2s", i, rep, took.Round(time.Millisecond))
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	wg.Wait()
	slices.Sort(ended)
	t.Logf("B opened %d tickets while %d clients dribbled and %d gave up at coordinator %d: the slowest took %s; the dribblers ended after %s (first) to %s (last)",
		opened, dribblers, quitters, f, worst.Round(time.Millisecond), ended[0].Round(time.Millisecond), ended[len(ended)-1].Round(time.Millisecond))
	var mine struct {
		Total int `json:"total"`
	}
	r.get(t, f, r.keyA, "/v1/tickets", &mine)
	if mine.Total != 0 {
		t.Errorf("A's dribbled and abandoned tickets: %d made; want none", mine.Total)
	}
	// Nothing left waiting: the goroutines are back near where they were.
	for _, i := range []int{f, ld} {
		var now float64
		framework.WaitFor(t, fmt.Sprintf("coordinator %d's goroutines back near %v", i, before[i]), 20*time.Second, 500*time.Millisecond, func() bool {
			now = goroutines(i)
			return now <= before[i]+20
		})
		t.Logf("coordinator %d: %v goroutines before, %v after", i, before[i], now)
	}

	// A body over 1 MiB: the same 413 at the follower as at the leader.
	big := `{"subject":"big","message":"` + strings.Repeat("b", 1<<20) + `"}`
	var want api.Error
	for _, i := range []int{ld, f} {
		for _, chunked := range []bool{false, true} {
			status, hdr, raw := postRaw(t, r.c.URL(i), r.keyA, big, chunked)
			// An election under load answers 503 with Retry-After, as a
			// client sends it again: a body over the limit is never applied.
			for end := time.Now().Add(15 * time.Second); status == 503 && hdr.Get("Retry-After") != "" && time.Now().Before(end); {
				t.Logf("coordinator %d: 503 %.200s; sent again after Retry-After", i, raw)
				time.Sleep(time.Second)
				status, hdr, raw = postRaw(t, r.c.URL(i), r.keyA, big, chunked)
			}
			e, err := framework.Reply{Status: status, Body: raw}.Envelope()
			what := fmt.Sprintf("a %d-byte body (chunked %v) at coordinator %d", len(big), chunked, i)
			if status != 413 || err != nil || e.Code == "" || hdr.Get("X-RateLimit-Limit") == "" {
				t.Errorf("%s: %d %.300s (X-RateLimit-Limit %q); want the 413 JSON with the key's rate-limit headers", what, status, raw, hdr.Get("X-RateLimit-Limit"))
				continue
			}
			if want.Code == "" {
				want = e
			} else if e.Code != want.Code || e.Message != want.Message {
				t.Errorf("%s: %s %q; want the leader's %s %q", what, e.Code, e.Message, want.Code, want.Message)
			}
		}
	}
	r.get(t, f, r.keyA, "/v1/tickets", &mine)
	if mine.Total != 0 {
		t.Errorf("A's bodies over the limit: %d tickets made; want none", mine.Total)
	}
}

// postRaw posts body to base's /v1/tickets as key, with its Content-Length or
// chunked, and returns the answer (the server may close the connection before
// reading all of the body: the answer is read anyway).
func postRaw(t *testing.T, base, key, body string, chunked bool) (int, http.Header, []byte) {
	t.Helper()
	u, _ := url.Parse(base)
	conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	head := fmt.Sprintf("POST /v1/tickets HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\n", u.Host, key)
	go func() {
		if chunked {
			_, _ = io.WriteString(conn, head+"Transfer-Encoding: chunked\r\n\r\n")
			for rest := body; rest != ""; {
				n := min(len(rest), 64<<10)
				if _, err := fmt.Fprintf(conn, "%x\r\n%s\r\n", n, rest[:n]); err != nil {
					return
				}
				rest = rest[n:]
			}
			_, _ = io.WriteString(conn, "0\r\n\r\n")
			return
		}
		_, _ = io.WriteString(conn, head+fmt.Sprintf("Content-Length: %d\r\n\r\n", len(body))+body)
	}()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("POST %d bytes to %s: %v", len(body), base, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, raw
}
