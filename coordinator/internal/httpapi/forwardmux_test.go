package httpapi

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// channelPair connects a follower's channel end to a leader's end serving h
// over loopback TCP.
func channelPair(t testing.TB, h http.Handler) *muxClient {
	t.Helper()
	c, _ := channelEnds(t, h)
	return c
}

// channelEnds is channelPair that also returns the leader's end.
func channelEnds(t testing.TB, h http.Handler) (*muxClient, *channelServer) {
	t.Helper()
	return channelEndsOver(t, h, nil)
}

// channelEndsOver is channelEnds whose leader end serves over wrap(the
// accepted connection) when wrap is not nil.
func channelEndsOver(t testing.TB, h http.Handler, wrap func(net.Conn) net.Conn) (*muxClient, *channelServer) {
	t.Helper()
	return channelEndsWaiting(t, h, wrap, forwardTimeout)
}

// channelEndsWaiting is channelEndsOver whose follower end waits timeout for
// each answer.
func channelEndsWaiting(t testing.TB, h http.Handler, wrap func(net.Conn) net.Conn, timeout time.Duration) (*muxClient, *channelServer) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
		close(accepted)
	}()
	cc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	sc := <-accepted
	if sc == nil {
		t.Fatal("accept failed")
	}
	if wrap != nil {
		sc = wrap(sc)
	}
	srv := newChannelServer(context.Background(), slog.New(slog.DiscardHandler), h, sc, cc.LocalAddr().String(), nil, 5*time.Second, nil)
	done := make(chan struct{})
	go func() { defer close(done); srv.serve(bufio.NewReader(sc)) }()
	c := newMuxClientWaiting(ln.Addr().String(), cc, bufio.NewReader(cc), timeout)
	t.Cleanup(func() {
		c.fail(io.EOF)
		<-done
	})
	return c, srv
}

// TestChannelCarriesConcurrentRequests: many requests at once, answered out of
// order after random delays, each get their own answer (status, headers, body)
// and the handler sees each request as sent (method, URI, host, headers, body,
// remote address).
func TestChannelCarriesConcurrentRequests(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Add("X-Echo-Multi", r.Header.Get("X-N"))
		w.Header().Add("X-Echo-Multi", "second")
		w.Header().Set("X-Seen", fmt.Sprintf("%s %s %s %d %v", r.Method, r.RequestURI, r.Host, r.ContentLength, r.RemoteAddr != ""))
		w.WriteHeader(200 + len(body)%7)
		_, _ = w.Write(body)
		_, _ = w.Write([]byte("!"))
	})
	c := channelPair(t, h)
	var wg sync.WaitGroup
	errs := make(chan error, 2000)
	for g := 0; g < 64; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 30; i++ {
				n := fmt.Sprint(g*1000 + i)
				body := bytes.Repeat([]byte(n), 1+(g*i)%200)
				hdr := http.Header{"X-N": {n}, "Content-Type": {"application/json"}}
				uri := "/v1/tickets/" + n + "?q=" + n
				resp, err := c.roundTrip(context.Background(), "POST", "leader:1", uri, hdr, body)
				if err != nil {
					errs <- err
					return
				}
				want := &fwdResponse{Status: 200 + len(body)%7, Header: http.Header{
					"Content-Type": {"application/json"}, "X-Echo-Multi": {n, "second"},
					"X-Seen": {fmt.Sprintf("POST %s leader:1 %d true", uri, len(body))},
				}, Body: append(append([]byte(nil), body...), '!')}
				if !reflect.DeepEqual(resp, want) {
					errs <- fmt.Errorf("request %s: got %+v, want %+v", n, resp, want)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// frameOf reads the one frame b holds.
func frameOf(t testing.TB, b []byte) (byte, uint64, []byte) {
	t.Helper()
	kind, id, payload, err := readFrame(bufio.NewReader(bytes.NewReader(b)), maxAnswer)
	if err != nil {
		t.Fatalf("reading back a written frame: %v", err)
	}
	return kind, id, payload
}

// FuzzDecodeRequestFrame: any payload decodes or is refused without a panic,
// and what decodes is encoded back to a frame that decodes the same.
func FuzzDecodeRequestFrame(f *testing.F) {
	f.Add(appendRequestFrame(nil, 1, "POST", "h:1", "/v1/tickets?x=1", http.Header{"A": {"1", "2"}, "B": {""}}, []byte(`{"a":1}`))[frameHead:])
	f.Add(appendRequestFrame(nil, 2, "", "", "", http.Header{}, nil)[frameHead:])
	f.Add([]byte{0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, payload []byte) {
		q, err := decodeRequest(payload)
		if err != nil {
			return
		}
		kind, id, again := frameOf(t, appendRequestFrame(nil, 7, q.Method, q.Host, q.URI, q.Header, q.Body))
		if kind != frameRequest || id != 7 {
			t.Fatalf("kind %d id %d", kind, id)
		}
		q2, err := decodeRequest(again)
		if err != nil {
			t.Fatalf("re-encoded request does not decode: %v", err)
		}
		if q.Method != q2.Method || q.Host != q2.Host || q.URI != q2.URI || !bytes.Equal(q.Body, q2.Body) || !sameHeader(q.Header, q2.Header) {
			t.Fatalf("round trip: %+v became %+v", q, q2)
		}
	})
}

// FuzzDecodeResponseFrame: as FuzzDecodeRequestFrame for answers.
func FuzzDecodeResponseFrame(f *testing.F) {
	f.Add(appendResponseFrame(nil, 1, 201, http.Header{"Content-Type": {"application/json"}, "X": {"a", "b"}}, []byte(`{}`))[frameHead:])
	f.Add(appendResponseFrame(nil, 1, 204, nil, nil)[frameHead:])
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, payload []byte) {
		p, err := decodeResponse(payload)
		if err != nil {
			return
		}
		kind, _, again := frameOf(t, appendResponseFrame(nil, 9, p.Status, p.Header, p.Body))
		if kind != frameResponse {
			t.Fatalf("kind %d", kind)
		}
		p2, err := decodeResponse(again)
		if err != nil {
			t.Fatalf("re-encoded answer does not decode: %v", err)
		}
		if p.Status != p2.Status || !bytes.Equal(p.Body, p2.Body) || !sameHeader(p.Header, p2.Header) {
			t.Fatalf("round trip: %+v became %+v", p, p2)
		}
	})
}

// sameHeader compares headers as a handler reads them: each name's values in order.
func sameHeader(a, b http.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !reflect.DeepEqual(v, b[k]) {
			return false
		}
	}
	return true
}

// TestReadFrameRefusesBadLengths: a frame shorter than its head or longer
// than maxFrame is refused before anything is allocated for it.
func TestReadFrameRefusesBadLengths(t *testing.T) {
	for _, n := range []uint32{0, 8, maxFrame + 1, 1<<32 - 1} {
		b := make([]byte, frameHead)
		b[0], b[1], b[2], b[3] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
		if _, _, _, err := readFrame(bufio.NewReader(bytes.NewReader(b)), maxFrame); err != errFrame {
			t.Errorf("length %d: %v, want errFrame", n, err)
		}
	}
}

// TestChannelNeedsTheLeadersConsent: a follower opens a channel only to a
// leader that upgrades with the cluster's secret; a leader without the channel
// (an older version: 404) or refusing the secret leaves the follower proxying,
// and it does not ask again at once.
func TestChannelNeedsTheLeadersConsent(t *testing.T) {
	newAPI := func(secret string) *API {
		a := &API{cfg: Config{NodeID: "f1", ClusterSecret: secret, Timeouts: DefaultTimeouts()}, log: slog.New(slog.DiscardHandler)}
		a.fwd = newForwarder(a)
		t.Cleanup(func() { a.CloseForwarding(context.Background()) })
		return a
	}
	leader := newAPI("the-secret")
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(r.URL.Path)) })
	var upgrades int
	var mu sync.Mutex
	mux := http.NewServeMux()
	mux.Handle("POST "+forwardPath, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		upgrades++
		mu.Unlock()
		leader.requireClusterToken(leader.serveForwardChannel(echo)).ServeHTTP(w, r)
	}))
	withChannel := httptest.NewServer(mux)
	defer withChannel.Close()
	var oldAsked int
	old := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		oldAsked++
		mu.Unlock()
		http.NotFound(w, r)
	}))
	defer old.Close()
	addr := func(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "http://") }

	f := newAPI("the-secret")
	if c := f.fwd.channel(addr(old)); c != nil {
		t.Fatal("a channel was opened to a leader without one")
	}
	if c := f.fwd.channel(addr(old)); c != nil || oldAsked != 1 {
		t.Fatalf("asked the old leader %d times at once, want 1", oldAsked)
	}
	if c := newAPI("another-secret").fwd.channel(addr(withChannel)); c != nil {
		t.Fatal("a channel was opened with the wrong cluster secret")
	}
	c := f.fwd.channel(addr(withChannel))
	if c == nil {
		t.Fatal("no channel to a leader offering one")
	}
	resp, err := c.roundTrip(context.Background(), "POST", addr(withChannel), "/v1/echo", http.Header{}, nil)
	if err != nil || string(resp.Body) != "/v1/echo" {
		t.Fatalf("round trip: %+v %v", resp, err)
	}
	if again := f.fwd.channel(addr(withChannel)); again != c || upgrades != 2 {
		t.Fatalf("the channel was not reused (%d upgrades, want 2: one refused, one open)", upgrades)
	}
}

// TestChannelSurvivesAPanickingHandler: a handler that panics leaves its
// request without an answer (the follower's 503) and the channel serving the
// next one, as the HTTP server would.
func TestChannelSurvivesAPanickingHandler(t *testing.T) {
	c := channelPair(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/panic" {
			panic(http.ErrAbortHandler)
		}
		_, _ = w.Write([]byte("ok"))
	}))
	if resp, err := c.roundTrip(context.Background(), "POST", "l", "/v1/panic", http.Header{}, nil); err == nil {
		t.Fatalf("a panicking handler answered %+v", resp)
	}
	resp, err := c.roundTrip(context.Background(), "POST", "l", "/v1/fine", http.Header{}, nil)
	if err != nil || resp.Status != 200 || string(resp.Body) != "ok" {
		t.Fatalf("after a panic: %+v %v", resp, err)
	}
}

// neverAnswering is a leader's public handler that holds a request for
// /v1/never until it is cancelled, then says so on cancelled, and answers
// any other with status and its path.
func neverAnswering(status int) (h http.Handler, cancelled <-chan struct{}) {
	c := make(chan struct{}, 1)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/never" {
			<-r.Context().Done()
			c <- struct{}{}
			return
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, r.URL.Path)
	}), c
}
