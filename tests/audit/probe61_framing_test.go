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
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// TestProbe61RequestSmugglingShapes: requests whose framing two parsers
// could read two ways (RFC 9112 §6.3 and §5.2), each sent alone on a
// fresh connection to the leader and to a follower, as one POST
// /v1/tickets whose body, read another way, holds a second, complete
// request (POST /v1/tickets opening a ticket "smuggled-<case>"), beside a
// plain chunked request (opened: 201):
//   - Content-Length and Transfer-Encoding: chunked both, the chunked body
//     empty and the second request after it (CL.TE), and the second
//     request inside the chunk with a Content-Length covering only the
//     chunk's size line (TE.CL);
//   - two Content-Lengths that differ (as two lines, and as one "a, b");
//   - a chunk size past 64 bits that wraps to a small one, a negative one,
//     and a chunk-size line with a bare LF;
//   - obs-fold: a header continued on the next line that, read as a line
//     of its own, is a second Content-Length or a Transfer-Encoding.
//
// Each is answered at most once, by a 400 or by one answer after which the
// coordinator closes the connection (RFC 9112: a message with both
// Content-Length and Transfer-Encoding is rejected or processed and the
// connection closed); never two answers from the one request, and no
// "smuggled-" ticket is opened. After each, GET /v1/account on a fresh
// connection still answers 200.
func TestProbe61RequestSmugglingShapes(t *testing.T) {
	r := lightRig(t, "probe61frame")
	ld, f := r.leaderAndFollower()
	smuggledOK := map[string]bool{} // open findings seen smuggled
	for _, i := range []int{ld, f} {
		u, _ := url.Parse(r.c.URL(i))
		host := u.Host
		head := "POST /v1/tickets HTTP/1.1\r\nHost: " + host + "\r\nAuthorization: Bearer " + r.keyA + "\r\nContent-Type: application/json\r\n"
		smuggled := func(name string) string {
			body := fmt.Sprintf(`{"subject":"smuggled-%s","message":"m"}`, name)
			return head + fmt.Sprintf("Content-Length: %d\r\n\r\n", len(body)) + body
		}
		outer := func(name string) string { return fmt.Sprintf(`{"subject":"outer-%s","message":"m"}`, name) }
		type shape struct{ name, raw string }
		var shapes []shape
		{ // A chunked request as any client sends one: opened, the
			// connection closed after (RFC 9112 §6.3, Timeouts.Deadlines).
			o := outer("chunked")
			shapes = append(shapes, shape{"chunked", head + "Transfer-Encoding: chunked\r\n\r\n" + fmt.Sprintf("%x\r\n", len(o)) + o + "\r\n0\r\n\r\n"})
		}
		{ // CL.TE: by Transfer-Encoding the body ends at once.
			body := "0\r\n\r\n" + smuggled("cl-te")
			shapes = append(shapes, shape{"cl-te", head + fmt.Sprintf("Content-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n", len(body)) + body})
		}
		{ // TE.CL: by Content-Length the body is the chunk-size line.
			chunk := smuggled("te-cl")
			size := fmt.Sprintf("%x\r\n", len(chunk))
			shapes = append(shapes, shape{"te-cl", head + fmt.Sprintf("Content-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n", len(size)) + size + chunk + "\r\n0\r\n\r\n"})
		}
		{ // Transfer-Encoding first, then Content-Length.
			body := "0\r\n\r\n" + smuggled("te-first")
			shapes = append(shapes, shape{"te-first", head + fmt.Sprintf("Transfer-Encoding: chunked\r\nContent-Length: %d\r\n\r\n", len(body)) + body})
		}
		for _, form := range []string{"lines", "comma"} {
			o := outer("two-cl-" + form)
			rest := smuggled("two-cl-" + form)
			cl := fmt.Sprintf("Content-Length: %d\r\nContent-Length: %d\r\n", len(o), len(o)+len(rest))
			if form == "comma" {
				cl = fmt.Sprintf("Content-Length: %d, %d\r\n", len(o), len(o)+len(rest))
			}
			shapes = append(shapes, shape{"two-cl-" + form, head + cl + "\r\n" + o + rest})
		}
		{ // A chunk size of 2^64+5: wrapped, the chunk is "abcde".
			rest := "abcde\r\n0\r\n\r\n" + smuggled("chunk-wrap")
			shapes = append(shapes, shape{"chunk-wrap", head + "Transfer-Encoding: chunked\r\n\r\n" + "10000000000000005\r\n" + rest})
		}
		{ // A negative chunk size.
			shapes = append(shapes, shape{"chunk-negative", head + "Transfer-Encoding: chunked\r\n\r\n" + "-5\r\nabcde\r\n0\r\n\r\n" + smuggled("chunk-negative")})
		}
		{ // A chunk-size line ending in a bare LF, a size in upper case with a
			// long run of leading zeros.
			o := outer("chunk-lf")
			shapes = append(shapes, shape{"chunk-lf", head + "Transfer-Encoding: chunked\r\n\r\n" +
				fmt.Sprintf("%s%X\n", strings.Repeat("0", 40), len(o)) + o + "\r\n0\r\n\r\n" + smuggled("chunk-lf")})
		}
		{ // obs-fold: read as a line of its own, a second Content-Length
			// (covering the second request too).
			o := outer("fold-cl")
			rest := smuggled("fold-cl")
			shapes = append(shapes, shape{"fold-cl", head + fmt.Sprintf("Content-Length: %d\r\nX-Probe: a\r\n Content-Length: %d\r\n\r\n", len(o)+len(rest), len(o)) + o + rest})
		}
		{ // obs-fold: read as a line of its own, Transfer-Encoding.
			body := "0\r\n\r\n" + smuggled("fold-te")
			shapes = append(shapes, shape{"fold-te", head + fmt.Sprintf("Content-Length: %d\r\nX-Probe: a\r\n Transfer-Encoding: chunked\r\n\r\n", len(body)) + body})
		}
		{ // obs-fold continuing Transfer-Encoding itself.
			body := "0\r\n\r\n" + smuggled("fold-te-value")
			shapes = append(shapes, shape{"fold-te-value", head + fmt.Sprintf("Content-Length: %d\r\nTransfer-Encoding:\r\n chunked\r\n\r\n", len(body)) + body})
		}
		for _, s := range shapes {
			answers := p61Resend(t, host, s.raw)
			what := fmt.Sprintf("%s at coordinator %d", s.name, i)
			var bad string
			switch {
			case len(answers) == 0:
				bad = "no answer, the connection closed"
			case len(answers) > 1:
				bad = fmt.Sprintf("%d answers to one request (%s): a second request was read from its body", len(answers), strings.Join(answers, "; "))
			case s.name == "chunked" && !strings.HasPrefix(answers[0], "201 "):
				bad = answers[0] + "; want a 201"
			case !strings.HasPrefix(answers[0], "400 ") && !strings.HasSuffix(answers[0], "(closed)"):
				bad = answers[0] + "; want a 400, or one answer and the connection closed"
			}
			switch {
			case bad != "" && p61SmugglingOpen[s.name]:
				t.Logf("%s: %s (an open finding: p61SmugglingOpen)", what, bad)
				smuggledOK[s.name] = true
			case bad != "":
				t.Errorf("%s: %s", what, bad)
			case p61SmugglingOpen[s.name]:
				t.Errorf("%s: %s, no longer smuggled: remove it from p61SmugglingOpen", what, answers[0])
			default:
				t.Logf("%s: %s", what, answers[0])
			}
			// A fresh connection still works.
			if got := p61Resend(t, host, "GET /v1/account HTTP/1.1\r\nHost: "+host+"\r\nAuthorization: Bearer "+r.keyA+"\r\nConnection: close\r\n\r\n"); len(got) != 1 || !strings.HasPrefix(got[0], "200 ") {
				t.Errorf("after %s: GET /v1/account on a fresh connection: %q", what, got)
			}
		}
	}
	var l struct {
		Data []api.Ticket `json:"data"`
	}
	r.get(t, 0, r.keyA, "/v1/tickets?limit=200", &l)
	for _, tk := range l.Data {
		switch name, smuggled := strings.CutPrefix(tk.Subject, "smuggled-"); {
		case smuggled && !smuggledOK[name]:
			t.Errorf("a request hidden in another's body was processed: ticket %s %q", tk.ID, tk.Subject)
		default:
			t.Logf("ticket opened: %q", tk.Subject)
		}
	}
}

// p61SmugglingOpen are shapes found smuggled and not fixed yet: logged, not
// failed; a listed shape no longer smuggled fails the test, so a fix empties
// it. Found by this test on main (probe61, 2026-12-07): cl-te, te-first and
// fold-te-value, a request with both Content-Length and Transfer-Encoding:
// chunked read by the chunked framing with the connection kept open, so what
// Content-Length called body was read as the next request and executed
// (fixed with it: httpapi Timeouts.Deadlines closes after every chunked
// request, RFC 9112 §6.3).
var p61SmugglingOpen = map[string]bool{}

// p61Resend is p61Exchange sent again, for up to 15 s, while its one
// answer is a 503 of a leadership change (no_leader and the like: the
// rig's 1 s Raft timeout on a loaded machine), which executed nothing.
func p61Resend(t *testing.T, host, raw string) []string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		answers := p61Exchange(t, host, raw)
		if len(answers) != 1 || !strings.HasPrefix(answers[0], "503 ") || time.Now().After(deadline) {
			return answers
		}
		code := ""
		if _, body, ok := strings.Cut(answers[0], " "); ok {
			code = (framework.Reply{Status: 503, Body: []byte(strings.TrimSuffix(body, " (closed)"))}).Code()
		}
		if code != "no_leader" && code != "leader_unreachable" && !slices.Contains(newLeaderCodes, code) {
			return answers
		}
		time.Sleep(time.Second)
	}
}

// p61Exchange sends raw on a fresh connection to host and reads every
// answer the server sends on it until it closes the connection or sends
// nothing for 3 s: each as "STATUS code (closed)" when the connection was
// closed after it, "STATUS code" otherwise (code: the error envelope's, if
// any).
func p61Exchange(t *testing.T, host, raw string) []string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", host, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	var out []string
	for {
		_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			if len(out) > 0 && !p61Timeout(err) {
				out[len(out)-1] += " (closed)"
			}
			return out
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		a := fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(body)))
		if resp.Close {
			out = append(out, a+" (closed)")
			return out
		}
		out = append(out, a)
	}
}

func p61Timeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
