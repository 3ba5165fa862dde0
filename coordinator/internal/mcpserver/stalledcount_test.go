package mcpserver_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/ratelimit"
	"github.com/hostplane/hostplane/coordinator/internal/server"
	"github.com/hostplane/hostplane/coordinator/internal/testcluster"
	"github.com/hostplane/hostplane/pkg/api"
)

// TestMCPStalledBodyIsCountedOnEveryCoordinator: a POST to /mcp whose body
// stalls past --http-body-timeout is answered 408 body_timeout and costs the
// key one request of its limit, on the leader and on a follower alike, as a
// /v1 request of a valid key whose body stalls is counted (before its body is
// read). On a follower the count is a lease from the leader, asked after the
// body timeout has ended the request's context: asked under that context, it
// was refused at once and the client got a 429.
//
// A follower whose lease request fails (ratelimit.Leases' 2 s Timeout: a
// loaded machine; once at load ~30 in CI) counts the request for the next
// 5 s on a window of its own at the limit ÷ voters, and its X-RateLimit-*
// headers describe that window (README "A coordinator that cannot reach a
// leader"): counted once there is Remaining one below that share, Limit the
// share. The test took only the leader's count as an answer and failed
// "Remaining 32, want 96" on that path; it now tells the two windows apart
// by X-RateLimit-Limit and checks the one count in the window it names.
func TestMCPStalledBodyIsCountedOnEveryCoordinator(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.WithRateLimit(100), func(_ int, cfg *server.Config) {
		cfg.HTTP.Body = 500 * time.Millisecond
	})
	ld := c.Leader()
	_, key := c.NewAccount("mcp-stalledcount@example.com", readScopes...)
	c.WaitConverged(20 * time.Second)
	leader := c.Nodes[ld].Server.APIHandler()
	for _, i := range []int{ld, (ld + 1) % c.Len()} {
		role := "leader"
		if i != ld {
			role = "follower"
		}
		before := remaining(t, leader, key)
		share := ratelimit.Share(100, c.Len())
		resp, body := stallMCPBody(t, c.Nodes[i].Cfg.APIAddr, key)
		var e api.Error
		if err := json.Unmarshal(body, &e); resp.StatusCode != http.StatusRequestTimeout || err != nil || e.Code != "body_timeout" {
			t.Errorf("a stalled /mcp body on the %s: %s %.300s, want 408 body_timeout", role, resp.Status, body)
		}
		// On the follower: the leader's count after the 1 token it leased
		// for this request (it may lease more in the background after), or,
		// its lease request failed, the first count of its own share's
		// window (nothing before was counted there).
		limit, got := resp.Header.Get("X-RateLimit-Limit"), resp.Header.Get("X-RateLimit-Remaining")
		switch {
		case limit == "100" && got == strconv.Itoa(before-1):
		case i != ld && limit == strconv.Itoa(share) && got == strconv.Itoa(share-1):
			t.Logf("the follower's lease request failed: counted once on its own share's window (%s of %s left)", got, limit)
		default:
			t.Errorf("a stalled /mcp body on the %s: X-RateLimit-Limit %q, Remaining %q, want 100 and %d (counted once; %d before it), or on a follower whose lease failed %d and %d (counted once on its own share)",
				role, limit, got, before-1, before, share, share-1)
		}
	}
}

// stallMCPBody sends a POST /mcp to addr announcing a body of 200 bytes, sends
// 20 of them and no more, and reads the answer.
func stallMCPBody(t *testing.T, addr, key string) (*http.Response, []byte) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := fmt.Fprintf(conn, "POST /mcp HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nAccept: application/json, text/event-stream\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{\"jsonrpc\":\"2.0\",\"id\"", addr, key); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("the answer to a stalled /mcp body: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}
