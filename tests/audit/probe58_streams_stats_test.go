package audit

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// TestProbe58UnreadStatsStreams: stats streams (GET
// /v1/servers/:id/stats?stream=1) opened through a follower, and then at the
// leader, by a client that
// reads the answer's headers and nothing more are bounded by the account's
// cap (--stats-streams-per-account, 8: the leader counts the follower's
// forwarded streams), and once the client has gone, the follower's and the
// leader's goroutines are back near where they were within seconds: nothing
// is left holding the forwarded stream or the node's agent stream.
func TestProbe58UnreadStatsStreams(t *testing.T) {
	r := newRig(t)
	ld, f := r.leaderAndFollower()
	r.c.Credit(r.ctx, r.accA.ID, serverPrice)
	var so api.ServerOrder
	r.ordered(t, "A's order", ld, r.keyA, "/v1/servers", serverBody("stats-unread"), &so, 60*time.Second)
	goroutines := func(i int) float64 { return framework.Metrics(t, r.c.Nodes[i].MetricsURL())["go_goroutines"] }

	// Through a follower (which forwards to the leader), then at the leader.
	for _, at := range []int{f, ld} {
		before := map[int]float64{ld: goroutines(ld), f: goroutines(f)}
		u, _ := url.Parse(r.c.URL(at))
		const tries, streamCap = 12, 8
		var conns []net.Conn
		open, refused := 0, 0
		for range tries {
			conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, conn)
			t.Cleanup(func() { conn.Close() })
			fmt.Fprintf(conn, "GET /v1/servers/%s/stats?stream=1&interval=1 HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n\r\n", so.Server.ID, u.Host, r.keyA)
			_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReaderSize(oneByte{conn}, 16), nil)
			if err != nil {
				t.Fatalf("a stats stream through coordinator %d: %v", at, err)
			}
			_ = conn.SetReadDeadline(time.Time{})
			switch resp.StatusCode {
			case 200:
				open++
			case 429:
				refused++
				body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
				if resp.Header.Get("Retry-After") == "" {
					t.Errorf("a stats stream refused without Retry-After: %s", body)
				}
			default:
				body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
				t.Fatalf("a stats stream through coordinator %d: %d %s", at, resp.StatusCode, body)
			}
		}
		if open != streamCap || refused != tries-streamCap {
			t.Errorf("%d stats streams through coordinator %d: %d open, %d refused 429; want %d open (the account's cap)", tries, at, open, refused, streamCap)
		}
		// Held unread for a few samples.
		time.Sleep(5 * time.Second)
		during := map[int]float64{ld: goroutines(ld), f: goroutines(f)}
		closedAt := time.Now()
		for _, c := range conns {
			c.Close()
		}
		for _, i := range []int{f, ld} {
			var now float64
			framework.WaitFor(t, fmt.Sprintf("coordinator %d's goroutines back near %v", i, before[i]), 20*time.Second, 500*time.Millisecond, func() bool {
				now = goroutines(i)
				return now <= before[i]+20
			})
			t.Logf("coordinator %d (leader %v): %v goroutines before, %v with %d unread stats streams held through coordinator %d, %v %s after the client went",
				i, i == ld, before[i], during[i], open, at, now, time.Since(closedAt).Round(100*time.Millisecond))
		}
	}
}
