package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"

	"github.com/hostplane/hostplane/pkg/api"
)

// What a coordinator asks the leader over the coordinators' own channel
// (POST leasePath, POST usagePath; behind requireClusterToken): both ends.

// postToLeader sends v as JSON to path on the leader at addr, as a
// coordinator (its node id in X-Hostplane-Forwarded-By, and the cluster
// secret when there is no cluster TLS). The caller closes the answer's body.
func (a *API) postToLeader(ctx context.Context, addr, path string, v any) (*http.Response, error) {
	body, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.fwd.leaderURL(addr).String()+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(headerForwardedBy, a.cfg.NodeID)
	if a.cfg.ClusterTLS == nil {
		req.Header.Set(headerClusterToken, a.cfg.ClusterSecret)
	}
	return a.fwd.transport.RoundTrip(req)
}

// leaderRequest starts the leader's end: a coordinator that does not lead
// answers 503 no_leader (Retry-After 1), a body that cannot be read within
// limit bytes is a bad_body saying it could not read what, and one that parse
// refuses is a 400 with code, "invalid " what and parse's reason; ok false
// when it has answered.
func leaderRequest[T any](a *API, w http.ResponseWriter, r *http.Request, limit int64, what, code string, parse func([]byte) (T, error)) (v T, ok bool) {
	rid := requestID(r)
	if !a.raft.IsLeader() {
		w.Header().Set("Retry-After", "1")
		writeError(w, rid, api.NewError(http.StatusServiceUnavailable, "no_leader", "this coordinator is not the leader"))
		return v, false
	}
	body, status, _ := readLimited(w, r, limit)
	if status != 0 { // readLimited's error always comes with its status
		writeError(w, rid, api.NewError(status, "bad_body", "could not read the "+what))
		return v, false
	}
	v, err := parse(body)
	if err != nil {
		writeError(w, rid, api.NewError(http.StatusBadRequest, code, "invalid "+what+": "+err.Error()))
		return v, false
	}
	return v, true
}
