package robustness

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// TestPausedLeaderServesNoStaleRead: the leader is paused (SIGSTOP), a new leader
// is elected and acknowledges a write, reads are sent to the paused ex-leader
// (they queue on its socket), and it is resumed (SIGCONT). Every read it answers
// must show the new value, or be a 503 to retry; never the old value. Reads
// sent to it right after the resume are held to the same rule.
func TestPausedLeaderServesNoStaleRead(t *testing.T) {
	start := time.Now()
	c := newCluster(t, "focused")
	ctx := context.Background()
	// The race a stale leader would win is short (without the read barrier it
	// served old values in about half the rounds): five rounds, each pausing
	// whichever coordinator leads.
	var op *framework.CoordinatorProcess
	for round := 1; round <= 5; round++ {
		op = pauseRound(t, c, round)
		for _, p := range c.procs {
			c.waitReady(p, 20*time.Second)
		}
	}
	t.Logf("5 rounds in %.1fs", time.Since(start).Seconds())

	// The stale read the README documents: asked for, it is served locally.
	// Once the ex-leader has caught up it shows the latest value.
	deadline := time.Now().Add(10 * time.Second)
	for {
		v, st, err := c.read(ctx, op, "consistency=stale")
		if err == nil && st == 200 && v == "after-5" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stale read on the ex-leader: %q %d %v", v, st, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, st, _ := c.read(ctx, op, "consistency=sometimes"); st != 400 {
		t.Errorf("consistency=sometimes: status %d, want 400", st)
	}
}

// pauseRound pauses the leader, writes after-N through the new one, queues
// reads on the paused one, resumes it and checks every answer; it returns the
// ex-leader.
func pauseRound(t *testing.T, c *cluster, round int) *framework.CoordinatorProcess {
	start := time.Now()
	ctx := context.Background()
	before, after := fmt.Sprintf("before-%d", round), fmt.Sprintf("after-%d", round)
	old := c.leader(nil, 10*time.Second)
	op := c.procs[old]
	if st, err := c.write(ctx, op, before); err != nil || st != 200 {
		t.Fatalf("write before: %d %v", st, err)
	}
	// Half the queued reads go over connections the ex-leader already serves
	// (idle keep-alive, as a client's pool holds them), half over new ones.
	const queued, pipelined = 32, 4
	conns := make([]net.Conn, queued)
	readers := make([]*bufio.Reader, queued)
	for i := range conns {
		cn, err := net.DialTimeout("tcp", op.APIAddr, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer cn.Close()
		conns[i], readers[i] = cn, bufio.NewReader(cn)
		if i%2 == 1 {
			conns[i] = nil // dialled while paused
			cn.Close()
			continue
		}
		fmt.Fprintf(cn, "GET /v1/webhooks/%s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n\r\n", c.webhook, op.APIAddr, c.key)
		resp, err := http.ReadResponse(readers[i], nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("warm-up read: %d", resp.StatusCode)
		}
	}
	resume := pause(op)
	defer resume()
	t.Logf("paused leader %s", op.ID)
	nl := c.leader(map[int]bool{old: true}, 15*time.Second)
	t.Logf("new leader %s after %.1fs", c.procs[nl].ID, time.Since(start).Seconds())
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	st, err := c.write(wctx, c.procs[nl], after)
	cancel()
	if err != nil || st != 200 {
		t.Fatalf("write through the new leader: %d %v", st, err)
	}

	// Reads written to the paused coordinator's sockets now, after the write was
	// acknowledged: the kernel accepts new connections and buffers the requests.
	for i := range conns {
		if conns[i] == nil {
			cn, err := net.DialTimeout("tcp", op.APIAddr, 2*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer cn.Close()
			conns[i], readers[i] = cn, bufio.NewReader(cn)
		}
		cn := conns[i]
		// Several requests pipelined on each connection: they are served one
		// after the other, stretching the window a stale leader would use.
		var req strings.Builder
		for j := 0; j < pipelined; j++ {
			conn := "keep-alive"
			if j == pipelined-1 {
				conn = "close"
			}
			fmt.Fprintf(&req, "GET /v1/webhooks/%s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nConnection: %s\r\n\r\n", c.webhook, op.APIAddr, c.key, conn)
		}
		if _, err := io.WriteString(cn, req.String()); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(200 * time.Millisecond)
	resume()
	t.Logf("resumed %s", op.ID)

	type answer struct {
		how    string
		status int
		value  string
		err    error
	}
	answers := make(chan answer, queued*pipelined+queued)
	var wg sync.WaitGroup
	for i, cn := range conns {
		wg.Add(1)
		go func(cn net.Conn, br *bufio.Reader) {
			defer wg.Done()
			_ = cn.SetReadDeadline(time.Now().Add(15 * time.Second))
			for j := 0; j < pipelined; j++ {
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					if j > 0 && errors.Is(err, io.EOF) {
						return // the server closed after an error answer
					}
					answers <- answer{how: "queued", err: err}
					return
				}
				a := answer{how: "queued", status: resp.StatusCode}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil {
					a.err = err
				} else if resp.StatusCode == 200 {
					var w api.Webhook
					a.err = json.Unmarshal(body, &w)
					a.value = w.Description
				}
				answers <- a
			}
		}(cn, readers[i])
	}
	// And reads sent the moment it runs again.
	for i := 0; i < queued; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			defer cancel()
			v, st, err := c.read(rctx, op, "")
			answers <- answer{how: "after resume", status: st, value: v, err: err}
		}()
	}
	wg.Wait()
	close(answers)
	var fresh, refused, stale, total int
	for a := range answers {
		total++
		switch {
		case a.err != nil:
			t.Errorf("%s read: %v", a.how, a.err)
		case a.status == 200 && a.value == after:
			fresh++
		case a.status == 200:
			stale++
			t.Errorf("%s read through the resumed ex-leader returned %q: a value overwritten (by %q) before the read was sent", a.how, a.value, after)
		case a.status == 503 || a.status == 307 || a.status == 308:
			refused++
		default:
			t.Errorf("%s read: status %d", a.how, a.status)
		}
	}
	t.Logf("round %d: %d reads answered by the resumed ex-leader %s: %d new value, %d refused (503), %d OLD; %.1fs",
		round, total, op.ID, fresh, refused, stale, time.Since(start).Seconds())
	// It noticed that it had been stopped (and confirmed reads through the log
	// for a moment), as its log says.
	if lg, err := os.ReadFile(op.LogPath()); err != nil || !strings.Contains(string(lg), "did not run for a while") {
		t.Errorf("the resumed ex-leader's log does not say it noticed the stop (%v)", err)
	}
	// It is a working member again: a read through it (forwarded now) shows
	// the new value.
	deadline := time.Now().Add(10 * time.Second)
	for {
		v, st, err := c.read(ctx, op, "")
		if err == nil && st == 200 && v == after {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("read through %s after the resume: %q %d %v", op.ID, v, st, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return op
}
