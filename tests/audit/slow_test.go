package audit

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// dribble sends prefix at once on conn, then slow one byte every gap, for as
// long as the server reads, and reports when the server answered or closed
// the connection (measured from the first slow byte) and the status line it
// sent, if any. A server still reading after limit is an error.
func dribble(conn net.Conn, prefix, slow string, gap, limit time.Duration) (time.Duration, string, error) {
	defer conn.Close()
	if _, err := io.WriteString(conn, prefix); err != nil {
		return 0, "", err
	}
	start := time.Now()
	var took time.Duration
	var status string
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		line, _ := bufio.NewReader(conn).ReadString('\n')
		status = strings.TrimSpace(line)
		took = time.Since(start)
	}()
	for i := 0; i < len(slow); i++ {
		select {
		case <-ended:
			return took, status, nil
		case <-time.After(gap):
		}
		if time.Since(start) > limit {
			conn.Close()
			<-ended
			return took, status, fmt.Errorf("still reading after %s (%d of %d bytes sent)", limit, i, len(slow))
		}
		if _, err := conn.Write([]byte{slow[i]}); err != nil {
			// The server closed it: wait for the reader to see that.
			<-ended
			return took, status, nil
		}
	}
	<-ended
	return took, status, fmt.Errorf("all %d bytes went through at one byte per %s", len(slow), gap)
}

// TestDribblingClientsAreCut: with --http-header-timeout 2s and
// --http-body-timeout 2s, a client that keeps sending its request one byte
// every 50 ms (never stalling, so no per-read timeout would fire) is ended
// within the bound on the order, MCP and OAuth endpoints, on the leader and a
// follower: its headers are cut by the header timeout, its body is answered
// 408 by the body timeout (/mcp too: its body is read as /v1's). Nothing dribbled is
// ordered. Each request is long enough to take 50 s at that rate. An OAuth
// body over its 64 KiB is still a 413.
func TestDribblingClientsAreCut(t *testing.T) {
	r := newRig(t, "--http-header-timeout", "2s", "--http-body-timeout", "2s")
	r.c.Credit(r.ctx, r.accA.ID, 100*serverPrice)
	before := r.charged(r.keyA)
	ld, err := r.c.LeaderIndex(20 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	const (
		gap   = 50 * time.Millisecond
		bound = 2 * time.Second
		slack = 3 * time.Second // a loaded machine's scheduling
	)
	padding := strings.Repeat("p", 1000)
	order := `{"plan_slug":"vps-a","label":"slow","hostname":"slow","os_template":"base","ssh_keys":["` + padding + `"]}`
	type probe struct {
		name, method, path, ctype, body string
	}
	probes := []probe{
		{"server order", "POST", "/v1/servers", "application/json", order},
		{"domain order", "POST", "/v1/domains", "application/json", `{"name":"slow-` + padding[:40] + `.test","years":1,"x":"` + padding + `"}`},
		{"mcp", "POST", "/mcp", "application/json", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"x":"` + padding + `"}}`},
		{"oauth token", "POST", "/oauth/token", "application/x-www-form-urlencoded", "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code&device_code=" + padding},
	}
	var wg sync.WaitGroup
	for _, p := range probes {
		for _, i := range []int{ld, (ld + 1) % r.c.Len()} {
			u, _ := url.Parse(r.c.URL(i))
			head := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nAccept: application/json, text/event-stream\r\nContent-Type: %s\r\nContent-Length: %d\r\n",
				p.method, p.path, u.Host, r.keyA, p.ctype, len(p.body))
			for _, part := range []string{"headers", "body"} {
				wg.Add(1)
				go func(p probe, i int, part string) {
					defer wg.Done()
					conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
					if err != nil {
						t.Error(err)
						return
					}
					// Headers: all of them byte by byte, the last one never
					// ending. Body: the headers at once, then the body byte
					// by byte.
					prefix, slow := "", head+"X-Slow: "+padding
					if part == "body" {
						prefix, slow = head+"\r\n", p.body
					}
					took, status, err := dribble(conn, prefix, slow, gap, bound+slack+5*time.Second)
					switch {
					case err != nil:
						t.Errorf("%s %s %s dribbled to coordinator %d: %v", p.name, p.path, part, i, err)
					case took > bound+slack:
						t.Errorf("%s %s %s dribbled to coordinator %d: ended after %s, want within %s", p.name, p.path, part, i, took.Round(time.Millisecond), bound)
					case part == "body" && !strings.Contains(status, " 408 "):
						t.Errorf("%s %s body dribbled to coordinator %d: answered %q after %s, want 408", p.name, p.path, i, status, took.Round(time.Millisecond))
					case part == "headers" && status != "" && !strings.Contains(status, " 408 ") && !strings.Contains(status, " 400 "):
						t.Errorf("%s %s headers dribbled to coordinator %d: answered %q", p.name, p.path, i, status)
					default:
						t.Logf("%s %s %s on coordinator %d: ended after %s (%q)", p.name, p.path, part, i, took.Round(time.Millisecond), status)
					}
				}(p, i, part)
			}
		}
	}
	wg.Wait()
	if after := r.charged(r.keyA); after != before {
		t.Fatalf("dribbled orders changed the account: %+v → %+v", before, after)
	}
	// An OAuth body over its 64 KiB is still a 413, on either coordinator.
	for _, i := range []int{ld, (ld + 1) % r.c.Len()} {
		rep := r.apis[i].Call("", "POST", "/oauth/token", "device_code="+strings.Repeat("d", 65<<10), map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
		if rep.Status != 413 {
			t.Errorf("a 65 KiB OAuth token request on coordinator %d: %s, want 413", i, rep)
		}
	}
	// The coordinators still serve.
	if rep := r.call((ld+1)%r.c.Len(), r.keyA, "POST", "/v1/servers/quote", serverBody("q"), nil); rep.Status != 200 {
		t.Fatalf("after the dribblers: %s", rep)
	}
}
