package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/hostplane/hostplane/pkg/api"
)

// A stats stream (GET /v1/servers/{id}/stats?stream=1, server-sent events)
// that a follower forwards ends, when its leader goes away mid-stream (the
// leader-move cut, a broken connection), as the leader's own stream ends when
// the node drops: with one `event: error` saying why, so a customer's
// EventSource is told, not closed on in silence (the proxy aborted the
// response). An event the leader had only partly sent is not passed on: the
// client would take its remains and the error's data for one event.
var errLeaderStreamEnded = api.NewError(http.StatusServiceUnavailable, "leader_unreachable",
	"the stream from the cluster's leader ended (it stopped answering or leadership moved); connect again shortly")

// sseFromLeader passes a leader's event stream on up to its last whole
// event, then, if the stream broke rather than ended, the error event.
type sseFromLeader struct {
	body    io.ReadCloser
	pending []byte // read, after the last whole event
	out     []byte // whole events (and at the end the error) to return
	ended   bool   // body is done: return out, then io.EOF
	buf     [4 << 10]byte
}

// endStreamsWithError makes resp, if it is a stats event stream, end as
// described above. Other event streams (MCP's) are not touched: their
// clients know no such event. A brand renames only the segment after /v1/.
func endStreamsWithError(resp *http.Response) {
	p := resp.Request.URL.Path
	if !strings.HasPrefix(p, "/v1/") || !strings.HasSuffix(p, "/stats") {
		return
	}
	if ct, _, _ := strings.Cut(resp.Header.Get("Content-Type"), ";"); strings.TrimSpace(ct) == "text/event-stream" {
		resp.Body = &sseFromLeader{body: resp.Body}
	}
}

func (s *sseFromLeader) Read(p []byte) (int, error) {
	for len(s.out) == 0 {
		if s.ended {
			return 0, io.EOF
		}
		n, err := s.body.Read(s.buf[:])
		s.pending = append(s.pending, s.buf[:n]...)
		if i := bytes.LastIndex(s.pending, []byte("\n\n")); i >= 0 {
			s.out = append(s.out, s.pending[:i+2]...)
			s.pending = append(s.pending[:0], s.pending[i+2:]...)
		}
		switch {
		case errors.Is(err, io.EOF):
			// The leader ended it (after its own error event, say).
			s.out, s.ended = append(s.out, s.pending...), true
		case err != nil:
			b, _ := json.Marshal(errLeaderStreamEnded)
			s.out = append(s.out, "event: error\ndata: "...)
			s.out = append(append(s.out, b...), "\n\n"...)
			s.ended = true
		}
	}
	n := copy(p, s.out)
	s.out = s.out[n:]
	return n, nil
}

func (s *sseFromLeader) Close() error { return s.body.Close() }
