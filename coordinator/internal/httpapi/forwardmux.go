package httpapi

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/prometheus/client_golang/prometheus"
)

// The forwarding channel: a follower sends the /v1 writes it forwards to the
// leader as frames on one long-lived connection per leader instead of one
// proxied HTTP/1.1 exchange each. The connection is opened as an HTTP upgrade
// of POST /internal/forward on the leader's API port (mutual TLS or the cluster
// secret, as every forwarded request), so it reaches the same listener. The
// leader runs each framed request through its own public handler, the same
// chain a proxied request goes through (authentication, rate limits,
// idempotency, errors), and frames the answer back; frames queued while a
// write is under way leave in the next single write, so under load many
// requests share a system call on both sides.
//
// A leader that does not offer the channel (an older version) answers the
// upgrade with something else than 101, and the follower proxies as before.
const (
	forwardPath     = "/internal/forward"
	forwardProtocol = "hostplane-forward/1"
	// forwardTimeout bounds the wait for a framed request's answer, as the
	// proxy's ResponseHeaderTimeout does.
	forwardTimeout = 30 * time.Second
	// forwardRetryAfter is how long a follower proxies after failing to open
	// the channel before it tries again.
	forwardRetryAfter = 10 * time.Second
	// maxFrame bounds a request frame: a body of MaxBodyBytes plus its
	// headers; maxAnswer an answer's (no route answers a write with more).
	maxFrame  = MaxBodyBytes + 1<<20
	maxAnswer = 64 << 20
)

const (
	frameRequest  byte = 1
	frameResponse byte = 2
	frameCancel   byte = 3
)

// A frame is a 4-byte big-endian length of what follows, a kind byte, an
// 8-byte request id and the kind's payload:
//
//	request:  method, host, request URI, header count, (name, value)…, body
//	response: status (2 bytes), header count, (name, value)…, body
//	cancel:   nothing
//
// Strings and the body are a uvarint length and the bytes; the count is a uvarint.
const frameHead = 4 + 1 + 8

// fwdRequest is a framed request as the leader reads it.
type fwdRequest struct {
	Method, Host, URI string
	Header            http.Header
	Body              []byte
}

// fwdResponse is a framed answer. As the follower's channel hands it over
// its header is not decoded yet (Header nil): raw holds the checked payload,
// which headerInto decodes straight into the header of the answer written.
type fwdResponse struct {
	Status int
	Header http.Header
	Body   []byte
	raw    []byte
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendBytes(b, s []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendHeader(b []byte, h http.Header) []byte {
	n := 0
	for _, vs := range h {
		n += len(vs)
	}
	b = binary.AppendUvarint(b, uint64(n))
	for k, vs := range h {
		for _, v := range vs {
			b = appendString(appendString(b, k), v)
		}
	}
	return b
}

// beginFrame appends a frame's head with a length to be set by endFrame.
func beginFrame(b []byte, kind byte, id uint64) ([]byte, int) {
	start := len(b)
	b = append(b, 0, 0, 0, 0, kind)
	return binary.BigEndian.AppendUint64(b, id), start
}

func endFrame(b []byte, start int) []byte {
	binary.BigEndian.PutUint32(b[start:], uint32(len(b)-start-4))
	return b
}

func appendRequestFrame(b []byte, id uint64, method, host, uri string, h http.Header, body []byte) []byte {
	return appendRequestFrameWith(b, id, method, host, uri, plainHeader(h), body)
}

func appendRequestFrameWith(b []byte, id uint64, method, host, uri string, h frameHeader, body []byte) []byte {
	b, start := beginFrame(b, frameRequest, id)
	b = appendString(appendString(appendString(b, method), host), uri)
	b = appendBytes(h.appendTo(b), body)
	return endFrame(b, start)
}

func appendResponseFrame(b []byte, id uint64, status int, h http.Header, body []byte) []byte {
	b, start := beginFrame(b, frameResponse, id)
	b = binary.BigEndian.AppendUint16(b, uint16(status))
	b = appendBytes(appendHeader(b, h), body)
	return endFrame(b, start)
}

func appendCancelFrame(b []byte, id uint64) []byte {
	b, start := beginFrame(b, frameCancel, id)
	return endFrame(b, start)
}

var errFrame = errors.New("forward channel: malformed frame")

// frameReader reads one frame's fields. The strings share one copy of the
// payload; the body is a slice of it.
type frameReader struct {
	raw []byte
	s   string // raw as a string
	off int
}

func (r *frameReader) uvarint() (uint64, error) {
	v, n := binary.Uvarint(r.raw[r.off:])
	if n <= 0 {
		return 0, errFrame
	}
	r.off += n
	return v, nil
}

func (r *frameReader) span() (int, int, error) {
	n, err := r.uvarint()
	if err != nil || n > uint64(len(r.raw)-r.off) {
		return 0, 0, errFrame
	}
	start := r.off
	r.off += int(n)
	return start, r.off, nil
}

func (r *frameReader) str() (string, error) {
	s, e, err := r.span()
	if err != nil {
		return "", err
	}
	return r.s[s:e], nil
}

func (r *frameReader) header() (http.Header, error) {
	n, _ := binary.Uvarint(r.raw[r.off:])
	h := make(http.Header, min(n, uint64(len(r.raw)-r.off)/2))
	if err := r.headerInto(h, nil); err != nil {
		return nil, err
	}
	return h, nil
}

// headerInto adds the header's values to h, but those of the names drop
// reports (drop may be nil): after a name's values already in h.
func (r *frameReader) headerInto(h http.Header, drop func(string) bool) error {
	n, err := r.uvarint()
	if err != nil || n > uint64(len(r.raw)-r.off)/2 { // each pair takes 2 bytes at least
		return errFrame
	}
	// One array holds every value, each name's first at its own index with
	// no room after it, so appending to one (a second value here, or the
	// handler later) copies instead of writing over the next (as textproto).
	vals := make([]string, n)
	for i := range vals {
		k, err := r.str()
		if err != nil {
			return err
		}
		v, err := r.str()
		if err != nil {
			return err
		}
		if drop != nil && drop(k) {
			continue
		}
		if vs, ok := h[k]; ok {
			h[k] = append(vs, v)
			continue
		}
		vals[i] = v
		h[k] = vals[i : i+1 : i+1]
	}
	return nil
}

// skipHeader checks a header's framing and steps over it.
func (r *frameReader) skipHeader() error {
	n, err := r.uvarint()
	if err != nil || n > uint64(len(r.raw)-r.off)/2 {
		return errFrame
	}
	for range 2 * n {
		if _, _, err := r.span(); err != nil {
			return err
		}
	}
	return nil
}

func (r *frameReader) body() ([]byte, error) {
	s, e, err := r.span()
	if err != nil {
		return nil, err
	}
	if r.off != len(r.raw) {
		return nil, errFrame // trailing bytes
	}
	return r.raw[s:e:e], nil
}

// decodeRequest reads a request frame's payload.
func decodeRequest(payload []byte) (*fwdRequest, error) {
	var q fwdRequest
	if err := decodeRequestInto(&q, payload); err != nil {
		return nil, err
	}
	return &q, nil
}

// decodeRequestInto is decodeRequest into q (the channel's reader decodes
// into the job it hands over, not into a request of its own).
func decodeRequestInto(q *fwdRequest, payload []byte) error {
	r := &frameReader{raw: payload, s: string(payload)}
	var err error
	if q.Method, err = r.str(); err != nil {
		return err
	}
	if q.Host, err = r.str(); err != nil {
		return err
	}
	if q.URI, err = r.str(); err != nil {
		return err
	}
	if q.Header, err = r.header(); err != nil {
		return err
	}
	if q.Body, err = r.body(); err != nil {
		return err
	}
	return nil
}

// decodeResponse reads a response frame's payload.
func decodeResponse(payload []byte) (*fwdResponse, error) {
	p, err := checkResponse(payload)
	if err != nil {
		return nil, err
	}
	return p.decoded(), nil
}

// checkResponse reads a response frame's status and body and checks its
// header's framing; the header stays undecoded (headerInto).
func checkResponse(payload []byte) (*fwdResponse, error) {
	if len(payload) < 2 {
		return nil, errFrame
	}
	r := &frameReader{raw: payload, off: 2}
	if err := r.skipHeader(); err != nil {
		return nil, err
	}
	body, err := r.body()
	if err != nil {
		return nil, err
	}
	return &fwdResponse{Status: int(binary.BigEndian.Uint16(payload)), Body: body, raw: payload}, nil
}

// headerInto adds the answer's header to h, but the names drop reports.
// Its strings share one copy of the header's bytes (not the body's).
func (p *fwdResponse) headerInto(h http.Header, drop func(string) bool) {
	if p.raw == nil {
		for k, vs := range p.Header {
			if drop == nil || !drop(k) {
				h[k] = append(h[k], vs...)
			}
		}
		return
	}
	end := len(p.raw) - len(p.Body) // the body's bytes are the payload's last
	r := &frameReader{raw: p.raw[:end], s: string(p.raw[:end]), off: 2}
	_ = r.headerInto(h, drop) // checkResponse checked its framing
}

// decoded is p with its header decoded into Header.
func (p *fwdResponse) decoded() *fwdResponse {
	if p.raw != nil {
		n, _ := binary.Uvarint(p.raw[2:])
		h := make(http.Header, min(n, uint64(len(p.raw))/2))
		p.headerInto(h, nil)
		p.Header, p.raw = h, nil
	}
	return p
}

// readFrame reads the next frame, of at most limit bytes: its kind, id and
// payload.
func readFrame(br *bufio.Reader, limit uint32) (byte, uint64, []byte, error) {
	// The head is read in br's buffer (an array of its own, handed to
	// io.ReadFull, was an allocation per frame); the errors are ReadFull's.
	head, err := br.Peek(frameHead)
	if err != nil {
		if len(head) > 0 && errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return 0, 0, nil, err
	}
	n := binary.BigEndian.Uint32(head[:4])
	kind, id := head[4], binary.BigEndian.Uint64(head[5:])
	_, _ = br.Discard(frameHead)
	if n < 9 || n > limit {
		return 0, 0, nil, errFrame
	}
	payload := make([]byte, n-9)
	if _, err := io.ReadFull(br, payload); err != nil {
		if errors.Is(err, io.EOF) {
			// The head came: a frame cut before its payload, not a
			// channel closed between frames.
			err = io.ErrUnexpectedEOF
		}
		return 0, 0, nil, err
	}
	return kind, id, payload, nil
}

// channelCounts counts one end's traffic over all its channels (a follower's
// to its leaders, or a leader's from its followers): frames written and the
// writes that carried them, frames read and the reads of the connection that
// brought them. Frames per write and per read are how well the channel
// coalesces: at 1 each frame costs a system call of its own. Over mutual TLS
// the calls counted are the TLS connection's (a write of over one record is
// a system call per record).
type channelCounts struct {
	framesOut, writes, framesIn, reads atomic.Int64
}

// countReads counts the reads of r in n.
type countReads struct {
	r io.Reader
	n *atomic.Int64
}

func (c countReads) Read(p []byte) (int, error) {
	c.n.Add(1)
	return c.r.Read(p)
}

// readerCounting reads br with its reads counted in cnt. A read into an empty
// buffer of at least br's size goes straight to br's reader when br's buffer
// is empty (bufio's rule): one read counted is then one of the connection.
func readerCounting(br *bufio.Reader, cnt *channelCounts) *bufio.Reader {
	return bufio.NewReaderSize(countReads{br, &cnt.reads}, max(br.Size(), 64<<10))
}

// countCollectors are the channels' counts as Prometheus series, by end.
func (f *forwarder) countCollectors() []prometheus.Collector {
	var cs []prometheus.Collector
	for _, end := range []struct {
		name string
		c    *channelCounts
	}{{"follower", &f.counts.follower}, {"leader", &f.counts.leader}} {
		for _, m := range []struct {
			name, help string
			v          *atomic.Int64
		}{
			{"frames_written_total", "Frames this end of the forwarding channels wrote.", &end.c.framesOut},
			{"writes_total", "Writes to the connection that carried them.", &end.c.writes},
			{"frames_read_total", "Frames this end of the forwarding channels read.", &end.c.framesIn},
			{"reads_total", "Reads of the connection that brought them.", &end.c.reads},
		} {
			cs = append(cs, prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "hostplane_forward_channel_" + m.name, Help: m.help + " Over mutual TLS: calls of the TLS connection. end: follower (to the leader) or leader (from the followers).",
				ConstLabels: prometheus.Labels{"end": end.name},
			}, func() float64 { return float64(m.v.Load()) }))
		}
	}
	return cs
}

// frameWriter sends frames in as few writes as it can: frames are appended to
// a buffer under a lock, and one goroutine writes out all that has gathered
// while its previous write was under way.
type frameWriter struct {
	conn    net.Conn
	timeout time.Duration
	cnt     *channelCounts // nil: not counted
	wake    chan struct{}
	done    chan struct{} // closed by close or flushClose
	exited  chan struct{} // closed when the writing goroutine is gone

	mu     sync.Mutex
	buf    []byte
	spare  []byte
	err    error
	closed bool
	frames int64 // frames queued so far
	taken  int64 // frames taken for writing so far
	writes int64 // writes made so far
}

func newFrameWriter(conn net.Conn, timeout time.Duration, cnt *channelCounts) *frameWriter {
	w := &frameWriter{conn: conn, timeout: timeout, cnt: cnt, wake: make(chan struct{}, 1), done: make(chan struct{}), exited: make(chan struct{})}
	go w.loop()
	return w
}

// send appends a frame (built by add) and wakes the writer; it fails once the
// connection has failed.
func (w *frameWriter) send(add func([]byte) []byte) error {
	w.mu.Lock()
	if w.err != nil {
		err := w.err
		w.mu.Unlock()
		return err
	}
	w.buf = add(w.buf)
	w.frames++
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	return nil
}

func (w *frameWriter) loop() {
	defer close(w.exited)
	for {
		last := false
		select {
		case <-w.wake:
		case <-w.done:
			last = true // what is queued still goes, unless the channel failed
		}
		// Let the goroutines that are ready to run go first: the frame that
		// woke this one seldom comes alone (a group commit answers many
		// requests at once, a burst of clients sends many), and without this
		// the writer, run next by the scheduler, wrote about one frame per
		// system call on each side.
		runtime.Gosched()
		w.mu.Lock()
		if w.frames-w.taken == 1 && !last {
			// One frame so far: one more turn for the others.
			w.mu.Unlock()
			runtime.Gosched()
			w.mu.Lock()
		}
		if last && w.err != nil {
			w.mu.Unlock()
			return
		}
		if len(w.buf) == 0 {
			w.mu.Unlock()
			if last {
				return
			}
			continue
		}
		// Frames now gather in the spare buffer; none is shared with out.
		if w.cnt != nil {
			w.cnt.framesOut.Add(w.frames - w.taken)
			w.cnt.writes.Add(1)
		}
		w.taken = w.frames
		out := w.buf
		w.buf, w.spare = w.spare[:0], nil
		w.mu.Unlock()
		_ = w.conn.SetWriteDeadline(time.Now().Add(w.timeout))
		_, err := w.conn.Write(out)
		w.mu.Lock()
		w.writes++
		if cap(out) <= 1<<20 {
			w.spare = out[:0]
		} else {
			w.spare = nil // a big body once: do not keep its buffer
		}
		if err != nil && w.err == nil {
			w.err = err
		}
		w.mu.Unlock()
		if err != nil {
			w.conn.Close()
			return
		}
		if last {
			return
		}
	}
}

// counts reports how many frames were queued and how many writes carried them.
func (w *frameWriter) counts() (frames, writes int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.frames, w.writes
}

// close stops the writer (the channel failed): what has not been written is
// dropped.
func (w *frameWriter) close(err error) {
	w.mu.Lock()
	if w.err == nil {
		w.err = err
	}
	if !w.closed {
		w.closed = true
		close(w.done)
	}
	w.mu.Unlock()
}

// flushClose stops the writer once what is queued is written, and waits.
func (w *frameWriter) flushClose() {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.done)
	}
	w.mu.Unlock()
	<-w.exited
}

// ---- the follower's side ----

// muxClient is a follower's channel to one leader address.
type muxClient struct {
	addr string
	conn net.Conn
	w    *frameWriter

	timeout time.Duration  // how long a request waits for its answer (forwardTimeout)
	cnt     *channelCounts // nil: not counted

	mu      sync.Mutex
	nextID  uint64
	pending map[uint64]pendingAnswer
	err     error // set once the channel failed
	retired bool  // no new requests; closed when the last answer is in
}

// pendingAnswer is a request waiting for its answer: where the answer goes,
// and when the wait ends (watch).
type pendingAnswer struct {
	ch       chan *fwdResponse
	deadline time.Time
}

// answerTimedOut is what watch gives a request whose answer did not come in time.
var answerTimedOut = &fwdResponse{}

// answerChans holds the answer channels of requests that were answered, for
// reuse: a forwarded request took a channel and a timer of its own before.
var answerChans = sync.Pool{New: func() any { return make(chan *fwdResponse, 1) }}

// muxState is the follower's channel to the current leader address.
type muxState struct {
	mu          sync.Mutex
	cur         *muxClient
	dialing     bool
	failedAddr  string
	failedUntil time.Time
	closed      bool                        // CloseForwarding was called
	served      map[*channelServer]struct{} // followers' channels to this node
}

// channel returns the open channel to addr, or nil (the caller proxies): one
// caller at a time opens it, the others proxy meanwhile.
func (f *forwarder) channel(addr string) *muxClient {
	s := &f.mux
	s.mu.Lock()
	if c := s.cur; c != nil && c.addr == addr && c.usable() {
		s.mu.Unlock()
		return c
	}
	if s.closed || s.dialing || (s.failedAddr == addr && time.Now().Before(s.failedUntil)) {
		s.mu.Unlock()
		return nil
	}
	s.dialing = true
	s.mu.Unlock()

	c, err := f.dialChannel(addr)

	s.mu.Lock()
	defer s.mu.Unlock()
	s.dialing = false
	if err == nil && s.closed {
		c.fail(errors.New("shutting down"))
		return nil
	}
	if err != nil {
		f.a.log.Info("forwarding channel to the leader not available; proxying", "addr", addr, "err", err)
		s.failedAddr, s.failedUntil = addr, time.Now().Add(forwardRetryAfter)
		return nil
	}
	if old := s.cur; old != nil {
		old.retire()
	}
	s.cur = c
	return c
}

// dialChannel opens a channel to the leader at addr: an HTTP upgrade of
// POST /internal/forward, over mutual TLS when the cluster has it, else with
// the cluster secret.
func (f *forwarder) dialChannel(addr string) (*muxClient, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := (&net.Dialer{KeepAlive: 15 * time.Second}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if f.a.cfg.ClusterTLS != nil {
		tc := tls.Client(conn, f.a.cfg.ClusterTLS.Clone())
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, err
		}
		conn = tc
	}
	u := f.leaderURL(addr)
	u.Path = forwardPath
	req, _ := http.NewRequest(http.MethodPost, u.String(), http.NoBody)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", forwardProtocol)
	req.Header.Set(headerForwardedBy, f.a.cfg.NodeID)
	if f.a.cfg.ClusterTLS == nil {
		req.Header.Set(headerClusterToken, f.a.cfg.ClusterSecret)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if err := req.Write(conn); err != nil {
		conn.Close()
		return nil, err
	}
	br := bufio.NewReaderSize(countReads{conn, &f.counts.follower.reads}, 64<<10)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		conn.Close()
		return nil, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols || !strings.EqualFold(resp.Header.Get("Upgrade"), forwardProtocol) {
		resp.Body.Close()
		conn.Close()
		return nil, fmt.Errorf("the leader answered the upgrade with %d", resp.StatusCode)
	}
	_ = conn.SetDeadline(time.Time{})
	return newMuxClient(addr, conn, br, &f.counts.follower), nil
}

// newMuxClient runs the follower's end of an upgraded channel, its frames
// counted in cnt (its reads are br's to count).
func newMuxClient(addr string, conn net.Conn, br *bufio.Reader, cnt *channelCounts) *muxClient {
	c := newMuxClientWith(addr, conn, forwardTimeout, cnt)
	go c.readLoop(br)
	go c.watch()
	return c
}

// newMuxClientWaiting is newMuxClient whose requests wait timeout for their
// answers.
func newMuxClientWaiting(addr string, conn net.Conn, br *bufio.Reader, timeout time.Duration) *muxClient {
	c := newMuxClientWith(addr, conn, timeout, nil)
	go c.readLoop(br)
	go c.watch()
	return c
}

func newMuxClientWith(addr string, conn net.Conn, timeout time.Duration, cnt *channelCounts) *muxClient {
	return &muxClient{addr: addr, conn: conn, w: newFrameWriter(conn, forwardTimeout, cnt), cnt: cnt, timeout: timeout, pending: map[uint64]pendingAnswer{}}
}

// watch ends the waits that outlast c.timeout, as a timer per request did:
// it looks every c.timeout/30, so a wait ends within 1/30 of its length past
// it. It returns when the channel closes.
func (c *muxClient) watch() {
	t := time.NewTicker(c.timeout / 30)
	defer t.Stop()
	for {
		select {
		case <-c.w.done:
			return
		case now := <-t.C:
			var late []uint64
			c.mu.Lock()
			for id, p := range c.pending {
				if now.After(p.deadline) {
					late = append(late, id)
					delete(c.pending, id)
					p.ch <- answerTimedOut // the only send: it left pending
				}
			}
			done := late != nil && c.retired && len(c.pending) == 0
			c.mu.Unlock()
			for _, id := range late {
				_ = c.w.send(func(b []byte) []byte { return appendCancelFrame(b, id) })
			}
			if done {
				c.fail(errors.New("forward channel retired"))
				return
			}
		}
	}
}

func (c *muxClient) usable() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err == nil && !c.retired
}

// retire lets the requests in flight finish, then closes the channel.
func (c *muxClient) retire() {
	c.mu.Lock()
	c.retired = true
	idle := len(c.pending) == 0
	c.mu.Unlock()
	if idle {
		c.fail(errors.New("forward channel retired"))
	}
}

// fail closes the channel: every request in flight gets no answer (nil).
func (c *muxClient) fail(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	pending := c.pending
	c.pending = map[uint64]pendingAnswer{}
	c.mu.Unlock()
	c.w.close(err)
	c.conn.Close()
	for _, p := range pending {
		close(p.ch)
	}
}

func (c *muxClient) readLoop(br *bufio.Reader) {
	for {
		kind, id, payload, err := readFrame(br, maxAnswer)
		if err == nil && c.cnt != nil {
			c.cnt.framesIn.Add(1)
		}
		if err == nil && kind != frameResponse {
			err = errFrame
		}
		var resp *fwdResponse
		if err == nil {
			resp, err = checkResponse(payload)
		}
		if err != nil {
			c.fail(err)
			return
		}
		p, ok, done := c.take(id)
		if ok {
			p.ch <- resp
		}
		if done {
			c.fail(errors.New("forward channel retired"))
			return
		}
	}
}

// frameHeader is a request's header as it is framed: its count of values and
// the (name, value) pairs.
type frameHeader interface {
	appendTo(b []byte) []byte
}

// plainHeader frames an http.Header as it is.
type plainHeader http.Header

func (h plainHeader) appendTo(b []byte) []byte { return appendHeader(b, http.Header(h)) }

// roundTrip sends one request and waits for its answer: nil with an error
// when the channel failed, the wait timed out or ctx ended.
func (c *muxClient) roundTrip(ctx context.Context, method, host, uri string, h http.Header, body []byte) (*fwdResponse, error) {
	resp, err := c.send(ctx, method, host, uri, plainHeader(h), body)
	if err != nil {
		return nil, err
	}
	return resp.decoded(), nil
}

// send is roundTrip with the header given as it is framed.
func (c *muxClient) send(ctx context.Context, method, host, uri string, h frameHeader, body []byte) (*fwdResponse, error) {
	return c.sendCut(ctx, nil, method, host, uri, h, body)
}

// sendCut is send whose wait also ends, as an end of ctx does, when cut is
// closed (nil: never).
func (c *muxClient) sendCut(ctx context.Context, cut <-chan struct{}, method, host, uri string, h frameHeader, body []byte) (*fwdResponse, error) {
	ch := answerChans.Get().(chan *fwdResponse)
	deadline := time.Now().Add(c.timeout)
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		answerChans.Put(ch)
		return nil, err
	}
	c.nextID++
	id := c.nextID
	c.pending[id] = pendingAnswer{ch: ch, deadline: deadline}
	c.mu.Unlock()
	if err := c.w.send(func(b []byte) []byte { return appendRequestFrameWith(b, id, method, host, uri, h, body) }); err != nil {
		c.fail(err)
		return nil, err
	}
	select {
	case resp, ok := <-ch:
		if !ok {
			return nil, errors.New("forward channel closed")
		}
		// Whoever sent resp took this request out of pending first: no
		// one else sends on ch, so it can serve another request.
		answerChans.Put(ch)
		if resp == answerTimedOut {
			return nil, errors.New("timeout awaiting the leader's answer")
		}
		if resp.Status == 0 {
			return nil, errors.New("the leader failed to answer")
		}
		return resp, nil
	case <-ctx.Done():
		// An answer may be on its way into ch: it is not reused.
		c.abandon(id)
		return nil, ctx.Err()
	case <-cut:
		c.abandon(id)
		return nil, errLeaderMoved
	}
}

// errLeaderMoved ends a wait on the channel whose leader run ended (the
// leader moved or was lost leaderMoveGrace ago), as the canceled context of
// a proxied request does.
var errLeaderMoved = errors.New("the leader moved or was lost while the request was in flight")

// take ends the wait for id: it returns the wait, whether there was one,
// and whether that was the last wait of a retired channel (which then ends).
func (c *muxClient) take(id uint64) (p pendingAnswer, ok, done bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok = c.pending[id]
	delete(c.pending, id)
	return p, ok, c.retired && len(c.pending) == 0
}

// abandon stops waiting for id and tells the leader to cancel it.
func (c *muxClient) abandon(id uint64) {
	_, waiting, done := c.take(id)
	if waiting {
		_ = c.w.send(func(b []byte) []byte { return appendCancelFrame(b, id) })
	}
	if done {
		c.fail(errors.New("forward channel retired"))
	}
}

// channelEligible reports whether a forwarded request may go over the
// channel: a /v1 call that is not a read (a GET may answer with a stream, which
// the proxy relays as it comes), asks for no protocol switch, and has a plain
// query (one with a ';', a '%' escape or more than 10,000 parameters is
// proxied, which passes it on as sent: the proxy's Rewrite restores it).
func channelEligible(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return false
	}
	q := r.URL.RawQuery
	if strings.ContainsAny(q, ";%") || strings.Count(q, "&") >= 10000 {
		return false
	}
	return strings.HasPrefix(r.URL.Path, "/v1/") && r.Header.Get("Upgrade") == ""
}

// hopHeaders are the hop-by-hop headers a proxy drops (as httputil.ReverseProxy).
var hopHeaders = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// forwardedHeader is what the proxy would send the leader for r: the client's
// headers without hop-by-hop and X-Forwarded-* ones, with this node's own. It
// is framed straight from r.Header (no copy of it is made): the names dropped
// are skipped and the ones this node sets are added.
type forwardedHeader struct {
	src       http.Header
	connNames []string // the canonical names Connection lists (dropped)
	dropUA    bool     // an empty User-Agent (the client sends it as none)
	set       [7][2]string
	nset      int
}

// dropFromClient are the client's headers the leader never gets from a
// follower: hop-by-hop ones, X-Forwarded-* ones, and those only a follower
// may say (set again below when it does).
var dropFromClient = func() map[string]bool {
	m := map[string]bool{"Forwarded": true, "X-Forwarded-For": true, "X-Forwarded-Host": true, "X-Forwarded-Proto": true,
		headerForwardedBy: true, headerAudiencePath: true, headerBodyUnread: true, "Content-Length": true}
	for _, k := range hopHeaders {
		m[k] = true
	}
	return m
}()

func (f *forwarder) forwardedHeader(r *http.Request, body []byte) *forwardedHeader {
	fh := &forwardedHeader{src: r.Header}
	conn := r.Header["Connection"]
	for _, v := range conn {
		for name := range strings.SplitSeq(v, ",") {
			if name = textproto.TrimString(name); name != "" {
				fh.connNames = append(fh.connNames, textproto.CanonicalMIMEHeaderKey(name))
			}
		}
	}
	trailers := false
	if !fh.connDrops("Te") {
		for _, v := range r.Header["Te"] {
			for t := range strings.SplitSeq(v, ",") {
				trailers = trailers || strings.EqualFold(textproto.TrimString(t), "trailers")
			}
		}
	}
	if trailers {
		fh.add("Te", "trailers")
	}
	if vs, ok := r.Header["User-Agent"]; ok && !fh.connDrops("User-Agent") && (len(vs) == 0 || vs[0] == "") {
		fh.dropUA = true
	}
	f.ownHeaders(r, len(body), fh.add)
	return fh
}

// ownHeaders calls set with each header this node says itself on r, which it
// forwards on the channel with a body of n bytes: who forwards it, the
// audience path, the client's address and what vouches for this node.
func (f *forwarder) ownHeaders(r *http.Request, n int, set func(k, v string)) {
	set(headerForwardedBy, f.a.cfg.NodeID)
	if p, ok := r.Context().Value(audienceKey{}).(string); ok {
		set(headerAudiencePath, p)
	}
	if f.a.cfg.ClusterTLS != nil {
		set(headerClientIP, f.a.clientIP(r))
	} else if f.a.cfg.ClusterSecret != "" {
		set(headerClusterToken, f.a.cfg.ClusterSecret)
		set(headerClientIP, f.a.clientIP(r))
	}
	set("Content-Length", strconv.Itoa(n))
}

func (fh *forwardedHeader) add(k, v string) {
	fh.set[fh.nset] = [2]string{k, v}
	fh.nset++
}

func (fh *forwardedHeader) connDrops(k string) bool {
	for _, n := range fh.connNames {
		if n == k {
			return true
		}
	}
	return false
}

// keeps reports whether the client's header k goes to the leader as it came.
func (fh *forwardedHeader) keeps(k string) bool {
	if dropFromClient[k] || (k == "User-Agent" && fh.dropUA) || fh.connDrops(k) {
		return false
	}
	for _, kv := range fh.set[:fh.nset] {
		if kv[0] == k {
			return false
		}
	}
	return true
}

func (fh *forwardedHeader) appendTo(b []byte) []byte {
	n := fh.nset
	for k, vs := range fh.src {
		if fh.keeps(k) {
			n += len(vs)
		}
	}
	b = binary.AppendUvarint(b, uint64(n))
	for k, vs := range fh.src {
		if fh.keeps(k) {
			for _, v := range vs {
				b = appendString(appendString(b, k), v)
			}
		}
	}
	for _, kv := range fh.set[:fh.nset] {
		b = appendString(appendString(b, kv[0]), kv[1])
	}
	return b
}

// forwardOnChannel sends r to the leader over c and writes its answer as the
// proxy would: the leader's headers but X-Request-Id and nosniff (this node set
// the same), its Cache-Control instead of this node's, its status and body; or,
// when the leader cannot be reached, the proxy's 503.
//
// cut ends the wait for the answer as an end of r's context does (nil: never):
// the leader run's end (forwarder.joinRun).
func (f *forwarder) forwardOnChannel(w http.ResponseWriter, r *http.Request, rid string, c *muxClient, host string, cut <-chan struct{}) {
	body, err := readBodyAny(w, r) // the leader checks the type
	unread := ""
	if err != nil {
		var ok bool
		if unread, ok = bodyUnread(err); !ok {
			ae, _ := toAPIError(err)
			f.a.uncountedLimitHeaders(w, r)
			writeRefusal(w, r, rid, ae)
			return
		}
		body = nil // the leader answers it (see bodyUnread)
	}
	if unread == "" {
		// The body is in; from here the wait is for the leader (as proxyTo).
		_ = http.NewResponseController(w).SetReadDeadline(time.Time{})
	}
	fh := f.forwardedHeader(r, body)
	ctx := r.Context()
	if unread != "" {
		fh.add(headerBodyUnread, unread)
		var cancel context.CancelFunc
		ctx, cancel = unreadContext(ctx)
		defer cancel()
		cut = nil // as before: unreadContext dropped every end of r's context
	}
	resp, err := c.sendCut(ctx, cut, r.Method, host, r.URL.RequestURI(), fh, body)
	w.Header().Del("Cache-Control")
	if err != nil {
		f.a.log.Warn("forward to leader failed", "err", err, "path", r.URL.Path)
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Retry-After", "1")
		f.a.uncountedLimitHeaders(w, r)
		writeRefusal(w, r, rid, api.NewError(http.StatusServiceUnavailable, "leader_unreachable", "the leader could not be reached; retry shortly"))
		return
	}
	// The leader's header, decoded straight into this answer's (after this
	// node's values of a name, which an append to never writes over); a
	// name it carries is the leader's alone (forward.go, ownHeaderKey):
	// this node's values before the leader's are dropped.
	dst := w.Header()
	var ownN map[string]int
	if ownNames(dst) {
		ownN = make(map[string]int, len(dst))
		for k, vs := range dst {
			ownN[k] = len(vs)
		}
	}
	resp.headerInto(dst, notFromLeader)
	for k, n := range ownN {
		if vs := dst[k]; len(vs) > n {
			dst[k] = vs[n:]
		}
	}
	for _, k := range hopHeaders {
		delete(dst, k)
	}
	if unread == unreadTimeout || len(r.TransferEncoding) > 0 {
		// As readBodyAny set it: the rest of the body is still unread; or
		// as Timeouts.Deadlines set it for a chunked request (RFC 9112 §6.3),
		// which the hop-by-hop names just dropped.
		dst.Set("Connection", "close")
	}
	w.WriteHeader(resp.Status)
	if len(resp.Body) > 0 {
		// One write: its deadline as a stallWriter sets it.
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(f.a.cfg.Timeouts.Write))
		_, _ = w.Write(resp.Body)
	}
}

// notFromLeader: the leader's answer headers a follower does not pass on,
// having set the same itself.
func notFromLeader(k string) bool { return k == headerRequestID || k == "X-Content-Type-Options" }

// ---- the leader's side ----

// serveForwardChannel takes over a follower's upgraded connection and serves
// the requests framed on it through h, the public handler.
func (a *API) serveForwardChannel(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Header.Get("Upgrade"), forwardProtocol) {
			writeError(w, "", api.NewError(http.StatusBadRequest, "upgrade_required", "send Upgrade: "+forwardProtocol))
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			writeError(w, "", api.NewError(http.StatusInternalServerError, "internal", "the connection cannot be taken over"))
			return
		}
		_ = conn.SetDeadline(time.Time{})
		if _, err := io.WriteString(conn, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: "+forwardProtocol+"\r\n\r\n"); err != nil {
			conn.Close()
			return
		}
		s := newChannelServer(r.Context(), a.log, h, conn, r.RemoteAddr, r.TLS, a.cfg.Timeouts.Write, &a.fwd.counts.leader)
		if a.metrics != nil {
			s.served = a.metrics.channelRequests.Inc
		}
		if !a.fwd.track(s) {
			conn.Close() // shutting down
			return
		}
		defer a.fwd.untrack(s)
		s.serve(brw.Reader)
	})
}

// track records a served channel so that CloseForwarding can close it; false
// once forwarding is closed.
func (f *forwarder) track(s *channelServer) bool {
	f.mux.mu.Lock()
	defer f.mux.mu.Unlock()
	if f.mux.closed {
		return false
	}
	if f.mux.served == nil {
		f.mux.served = map[*channelServer]struct{}{}
	}
	f.mux.served[s] = struct{}{}
	return true
}

func (f *forwarder) untrack(s *channelServer) {
	f.mux.mu.Lock()
	delete(f.mux.served, s)
	f.mux.mu.Unlock()
}

// CloseForwarding shuts the forwarding channels down as an HTTP server's
// Shutdown does its connections (the server does not track a taken-over one):
// the followers' channels to this node answer the requests they have read and
// close, and this node's channel to the leader takes no new request and
// closes once the answers in flight are in. It waits for the followers'
// channels until ctx ends, then closes them.
func (a *API) CloseForwarding(ctx context.Context) {
	s := &a.fwd.mux
	s.mu.Lock()
	s.closed = true
	cur, served := s.cur, s.served
	s.cur, s.served = nil, nil
	s.mu.Unlock()
	if cur != nil {
		cur.retire()
	}
	for cs := range served {
		cs.drain()
	}
	for cs := range served {
		select {
		case <-cs.finished:
		case <-ctx.Done():
			cs.conn.Close()
		}
	}
}

// newChannelServer serves the leader's end of an upgraded channel: each framed
// request through h. The requests' context keeps base's values (the server,
// the local address) but lives as long as the channel. Its traffic is counted
// in cnt (nil: not counted).
func newChannelServer(base context.Context, log *slog.Logger, h http.Handler, conn net.Conn, remote string, tlsState *tls.ConnectionState, writeTimeout time.Duration, cnt *channelCounts) *channelServer {
	ctx, cancel := context.WithCancel(context.WithoutCancel(base))
	return &channelServer{log: log, h: h, conn: conn, ctx: ctx, cancel: cancel, remote: remote, tls: tlsState, cnt: cnt,
		w: newFrameWriter(conn, writeTimeout, cnt), inflight: map[uint64]context.CancelFunc{}, jobs: make(chan channelJob), finished: make(chan struct{})}
}

type channelServer struct {
	log    *slog.Logger
	cnt    *channelCounts // nil: not counted
	served func()         // counts a served request (nil: not counted)
	h      http.Handler
	conn   net.Conn
	ctx    context.Context
	cancel context.CancelFunc
	remote string
	tls    *tls.ConnectionState
	w      *frameWriter

	mu       sync.Mutex
	inflight map[uint64]context.CancelFunc
	handlers sync.WaitGroup  // the handler goroutines
	jobs     chan channelJob // to an idle handler goroutine; closed when reading ends
	draining atomic.Bool     // this coordinator is shutting down (drain)
	finished chan struct{}   // closed when serve has closed the connection
}

// drain stops reading new requests; the ones read are answered, then the
// connection closes (as an HTTP server's Shutdown lets requests finish).
func (s *channelServer) drain() {
	s.draining.Store(true)
	_ = s.conn.SetReadDeadline(time.Now())
}

func (s *channelServer) serve(br *bufio.Reader) {
	defer func() {
		if !s.draining.Load() {
			s.cancel() // the follower is gone: as a closed client connection
		}
		close(s.jobs) // idle handler goroutines end
		s.handlers.Wait()
		s.cancel()
		s.w.flushClose()
		s.conn.Close()
		close(s.finished)
	}()
	if s.cnt != nil {
		br = readerCounting(br, s.cnt)
	} else if br.Size() < 64<<10 {
		br = bufio.NewReaderSize(br, 64<<10)
	}
	for {
		kind, id, payload, err := readFrame(br, maxFrame)
		if err == nil && s.cnt != nil {
			s.cnt.framesIn.Add(1)
		}
		if err != nil {
			if !s.draining.Load() && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				s.log.Warn("forward channel from a follower failed", "remote", s.remote, "err", err)
			}
			return
		}
		switch kind {
		case frameRequest:
			j := channelJob{id: id}
			if err := decodeRequestInto(&j.q, payload); err != nil {
				s.log.Warn("forward channel from a follower failed", "remote", s.remote, "err", err)
				return
			}
			ctx, cancel := context.WithCancel(s.ctx)
			s.mu.Lock()
			s.inflight[id] = cancel
			s.mu.Unlock()
			j.ctx = ctx
			s.dispatch(j)
		case frameCancel:
			s.mu.Lock()
			cancel := s.inflight[id]
			s.mu.Unlock()
			if cancel != nil {
				cancel()
			}
		default:
			s.log.Warn("forward channel from a follower failed", "remote", s.remote, "err", errFrame)
			return
		}
	}
}

// channelJob is a framed request for a handler goroutine.
type channelJob struct {
	ctx context.Context
	id  uint64
	q   fwdRequest
}

// handlerIdle is how long a handler goroutine waits for the next request
// before it ends.
const handlerIdle = 5 * time.Second

// dispatch hands j to an idle handler goroutine, or starts one. A handler
// goroutine serves requests until it has waited handlerIdle for one: a new
// goroutine per request would grow its stack anew each time (the public
// handler's call depth, JSON decoding included, outgrows a fresh stack) — on
// the leader that copying was ~6 % of its CPU when followers forwarded two
// thirds of the writes. An HTTP connection's goroutine is kept the same way.
func (s *channelServer) dispatch(j channelJob) {
	select {
	case s.jobs <- j:
	default:
		s.handlers.Add(1)
		go s.handleLoop(j)
	}
}

func (s *channelServer) handleLoop(j channelJob) {
	defer s.handlers.Done()
	// The timer is not reset per request (that was a timer heap update
	// each time): when it fires, it is set again for the rest of the idle
	// time since the last request, if that is not over.
	idle := time.NewTimer(handlerIdle)
	defer idle.Stop()
	for {
		s.handle(j.ctx, j.id, &j.q)
		j = channelJob{} // nothing of a served request is kept while idle
		last := time.Now()
		var ok bool
	wait:
		select {
		case j, ok = <-s.jobs:
			if !ok {
				return // the channel is closing
			}
		case <-idle.C:
			if waited := time.Since(last); waited < handlerIdle {
				idle.Reset(handlerIdle - waited)
				goto wait
			}
			return
		}
	}
}

// handle serves one framed request through the public handler and frames the
// answer back.
func (s *channelServer) handle(ctx context.Context, id uint64, q *fwdRequest) {
	defer func() {
		s.mu.Lock()
		cancel := s.inflight[id]
		delete(s.inflight, id)
		s.mu.Unlock()
		if cancel != nil {
			cancel()
		}
	}()
	if s.served != nil {
		s.served()
	}
	defer func() {
		// As the HTTP server: a panicking handler is logged and its request
		// gets no answer (status 0: the follower's 503, as the proxy's when
		// the leader drops the connection); the channel goes on.
		if v := recover(); v != nil {
			if v != http.ErrAbortHandler {
				buf := make([]byte, 64<<10)
				buf = buf[:runtime.Stack(buf, false)]
				s.log.Error("panic serving a forwarded request", "remote", s.remote, "panic", v, "stack", string(buf))
			}
			_ = s.w.send(func(b []byte) []byte { return appendResponseFrame(b, id, 0, nil, nil) })
		}
	}()
	cw := &captureWriter{header: http.Header{}}
	req, err := s.request(ctx, q)
	if err != nil {
		cw.Header().Set(headerRequestID, q.Header.Get(headerRequestID))
		writeError(cw, "", api.NewError(http.StatusBadRequest, "invalid_request", "the forwarded request's URI is malformed"))
	} else {
		s.h.ServeHTTP(cw, req)
	}
	if cw.status == 0 {
		cw.status = http.StatusOK
	}
	_ = s.w.send(func(b []byte) []byte { return appendResponseFrame(b, id, cw.status, cw.header, cw.body) })
}

// request builds the request the public handler sees, as the HTTP server would
// build it from the proxied request.
func (s *channelServer) request(ctx context.Context, q *fwdRequest) (*http.Request, error) {
	u, err := url.ParseRequestURI(q.URI)
	if err != nil {
		return nil, err
	}
	// A value, not a pointer: WithContext copies it into the request the
	// handler gets (building one and copying it was two allocations).
	req := http.Request{
		Method: q.Method, URL: u, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: q.Header, Host: q.Host, RemoteAddr: s.remote, RequestURI: q.URI, TLS: s.tls,
		ContentLength: int64(len(q.Body)), Body: http.NoBody,
	}
	if len(q.Body) > 0 {
		req.Body = &sliceReader{b: q.Body}
	}
	return req.WithContext(ctx), nil
}

// sliceReader reads a byte slice (a bytes.Reader without its extras); its
// Close does nothing (it is a request's body as it is).
type sliceReader struct{ b []byte }

func (r *sliceReader) Close() error { return nil }

func (r *sliceReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

// captureWriter records a handler's answer for the channel.
type captureWriter struct {
	header http.Header
	status int
	body   []byte
}

func (c *captureWriter) Header() http.Header { return c.header }

func (c *captureWriter) WriteHeader(status int) {
	if c.status == 0 && status >= 200 {
		c.status = status
	}
}

func (c *captureWriter) Write(p []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	c.body = append(c.body, p...)
	return len(p), nil
}
