package framework

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/hostplane/hostplane/internal/openapidoc"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/client"
)

// ValidatingTransport is an http.RoundTripper for pkg/client in tests: it checks
// every /v1 response against the OpenAPI document (the status documented for
// the route, the body matching its schema) and reports a mismatch with
// t.Errorf (safe from any goroutine). A path the document lacks must answer
// 404 or 405.
type ValidatingTransport struct {
	t      testing.TB
	router routers.Router
	next   http.RoundTripper
	off    atomic.Bool
}

// LoadOpenAPI is kin-openapi's loader for doc, run once per test binary and
// document content (openapidoc.Load): under -race one load of /openapi.json
// took ≈ 0.4–1 s, and tests built a validating client per cluster or API.
// The document returned is shared: callers only read it (a copy of the
// top-level struct may change its own fields, as NewValidatingTransport does
// with Servers).
func LoadOpenAPI(doc []byte) (*openapi3.T, error) { return openapidoc.Load(doc) }

// NewValidatingTransport loads doc (the bytes of /openapi.json) for the API at base.
func NewValidatingTransport(t testing.TB, doc []byte, base string) *ValidatingTransport {
	t.Helper()
	loaded, err := LoadOpenAPI(doc)
	if err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	// A copy of the shared document's top level with this API's server; the
	// paths and schemas under it are shared and only read.
	d := *loaded
	d.Servers = openapi3.Servers{{URL: base + "/v1"}}
	r, err := gorillamux.NewRouter(&d)
	if err != nil {
		t.Fatalf("openapi.json router: %v", err)
	}
	return &ValidatingTransport{t: t, router: r, next: http.DefaultTransport}
}

// SetValidation turns the checks on or off (benchmarks time the API, not them).
func (v *ValidatingTransport) SetValidation(on bool) { v.off.Store(!on) }

type captureKey struct{}

// RoundTrip sends the request, reads the whole answer, validates it and hands
// it back unchanged; a Reply in the request's context (see API) receives it.
func (v *ValidatingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	var reqBody []byte
	if req.Body != nil {
		reqBody, _ = io.ReadAll(req.Body)
		req.Body.Close()
		req.Body = io.NopCloser(bytes.NewReader(reqBody))
	}
	resp, err := v.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	raw, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(raw))
	// A redirect (the mux cleaning a path) is followed by the client; the answer
	// it leads to is the one that counts.
	redirect := resp.StatusCode >= 300 && resp.StatusCode < 400 && resp.Header.Get("Location") != ""
	if strings.HasPrefix(req.URL.Path, "/v1/") && !v.off.Load() && !redirect && len(reqBody) < 1<<20 {
		v.Check(req, reqBody, resp.StatusCode, resp.Header, raw, false)
	}
	if r, ok := req.Context().Value(captureKey{}).(*Reply); ok {
		r.Method, r.Path = req.Method, req.URL.RequestURI()
		r.Status, r.Header, r.Body = resp.StatusCode, resp.Header, raw
	}
	return resp, nil
}

// Check validates one exchange: the request (method, URL, headers, body) and
// the answer's status, headers and body (skipBody: the status only, for event
// streams checked event by event).
func (v *ValidatingTransport) Check(req *http.Request, body []byte, status int, hdr http.Header, raw []byte, skipBody bool) {
	v.t.Helper()
	vreq, _ := http.NewRequest(req.Method, req.URL.String(), bytes.NewReader(body))
	vreq.Header = req.Header.Clone()
	route, params, err := v.router.FindRoute(vreq)
	if err != nil {
		if status == http.StatusNotFound || status == http.StatusMethodNotAllowed || status == http.StatusTooManyRequests {
			// An undocumented path must not be served; it was not (a 429:
			// the client address's budget for requests without a valid key,
			// or the key's, was spent before the path was looked at).
			return
		}
		v.t.Errorf("%s %s answered %d but is not in openapi.json: %v", req.Method, req.URL.Path, status, err)
		return
	}
	in := &openapi3filter.RequestValidationInput{Request: vreq, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: status, Header: hdr, Body: io.NopCloser(bytes.NewReader(raw)),
		Options: &openapi3filter.Options{IncludeResponseStatus: true, ExcludeResponseBody: skipBody},
	}
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		v.t.Errorf("%s %s → %d does not match openapi.json: %v\nbody: %.400s", req.Method, req.URL.Path, status, err, raw)
	}
}

// HonoursIdempotencyKey reports whether the operation method path (a /v1
// path, as sent) documents the Idempotency-Key header in openapi.json: the
// operations whose retry with the same key is answered, not executed again
// (README: every operation answered 201 or 202 but those that show a secret).
func (a *API) HonoursIdempotencyKey(method, path string) bool {
	return a.declares(method, path, openapi3.ParameterInHeader, "Idempotency-Key")
}

// TakesQuery reports whether the operation method path (a /v1 path, as
// sent) documents the query parameter name in openapi.json.
func (a *API) TakesQuery(method, path, name string) bool {
	return a.declares(method, path, openapi3.ParameterInQuery, name)
}

// declares reports whether the operation method path (a /v1 path, as sent)
// documents the parameter name in in (header names compared canonically).
func (a *API) declares(method, path, in, name string) bool {
	req, err := http.NewRequest(method, a.Base+path, nil)
	if err != nil {
		return false
	}
	route, _, err := a.Transport.router.FindRoute(req)
	if err != nil {
		return false
	}
	for _, p := range slices.Concat(route.PathItem.Parameters, route.Operation.Parameters) {
		if p.Value == nil || p.Value.In != in {
			continue
		}
		if p.Value.Name == name || in == openapi3.ParameterInHeader && http.CanonicalHeaderKey(p.Value.Name) == http.CanonicalHeaderKey(name) {
			return true
		}
	}
	return false
}

// API calls a coordinator's HTTP API through pkg/client with a
// ValidatingTransport. Typed calls use Client(key); tests that assert on raw
// answers (status, headers, error codes, malformed input) use Call, which goes
// through client.Do as well.
type API struct {
	T         testing.TB
	Base      string
	Transport *ValidatingTransport
}

// NewAPI is an API for the coordinator at base, checked against doc (nil: the
// /openapi.json that coordinator serves).
func NewAPI(t testing.TB, base string, doc []byte) *API {
	t.Helper()
	if doc == nil {
		resp, err := (&http.Client{Timeout: 15 * time.Second}).Get(base + "/openapi.json")
		if err != nil {
			t.Fatalf("GET %s/openapi.json: %v", base, err)
		}
		doc, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s/openapi.json: %s", base, resp.Status)
		}
	}
	return &API{T: t, Base: base, Transport: NewValidatingTransport(t, doc, base)}
}

// From is an API for the same coordinator and document whose requests leave
// from the local address ip: a loopback address such as 127.0.0.2 reaches a
// coordinator listening on 127.0.0.1 as another client address (the per-
// address rate limit, allow-lists). Its idle connections close with the test.
func (a *API) From(ip string) *API {
	local := net.ParseIP(ip)
	if local == nil {
		a.T.Fatalf("From(%q): not an IP address", ip)
	}
	tr := &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: local}, Timeout: 10 * time.Second}).DialContext}
	a.T.Cleanup(tr.CloseIdleConnections)
	v := &ValidatingTransport{t: a.Transport.t, router: a.Transport.router, next: tr}
	v.off.Store(a.Transport.off.Load())
	return &API{T: a.T, Base: a.Base, Transport: v}
}

// Client is a pkg/client client with key (empty: none) whose every answer is validated.
func (a *API) Client(key string) *client.Client {
	c := client.New(a.Base, key)
	c.HTTP = &http.Client{Timeout: 15 * time.Second, Transport: a.Transport}
	return c
}

// Reply is one raw answer.
type Reply struct {
	Method, Path string
	Status       int
	Header       http.Header
	Body         []byte
}

func (r Reply) String() string {
	return fmt.Sprintf("%s %s → %d %.400s", r.Method, r.Path, r.Status, r.Body)
}

// Decode unmarshals a 2xx answer's body into v, failing the test with the
// answer on any other status or a body that is not v's JSON: an error
// envelope decoded into a resource is that resource's zero value (a refused
// wallet read was once a balance of 0, and a test saw "charged -4500
// cents"). An error answer is read with DecodeError (or Err, Code).
func (r Reply) Decode(t testing.TB, v any) {
	t.Helper()
	if r.Status < 200 || r.Status > 299 {
		t.Fatalf("decode %T from %s: not a 2xx answer", v, r)
	}
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode %s: %v", r, err)
	}
}

// DecodeError is the error envelope of an answer that is not a 2xx,
// failing the test with the answer on a 2xx or a body that is not an
// envelope of its status: a test asserting on an error's code or message
// must not read a success (or an HTML page) as an empty error.
func (r Reply) DecodeError(t testing.TB) api.Error {
	t.Helper()
	e, err := r.Envelope()
	if err != nil {
		t.Fatalf("decode the error envelope of %v", err)
	}
	return e
}

// Envelope is DecodeError for a check that reports a wrong answer among
// others and goes on: the error envelope of an answer that is not a 2xx,
// or an error naming the answer when it is a 2xx or its body is not an
// envelope of its status. A raw answer read another way is checked as
// Reply{Status: status, Body: body}.Envelope().
func (r Reply) Envelope() (api.Error, error) {
	if r.Status >= 200 && r.Status <= 299 {
		return api.Error{}, fmt.Errorf("%s: a 2xx answer", r)
	}
	var e api.Error
	if err := json.Unmarshal(r.Body, &e); err != nil || e.StatusCode != r.Status {
		return api.Error{}, fmt.Errorf("%s: not an envelope of status %d (%v)", r, r.Status, err)
	}
	return e, nil
}

// Code is the error envelope's code.
func (r Reply) Code() string {
	var e api.Error
	_ = json.Unmarshal(r.Body, &e)
	return e.Code
}

// Err is the answer as pkg/client returns it: nil for a 2xx, else the
// *api.Error its body holds (one with the status and the body as its
// message when the body is not an error envelope). With the Header, it is
// what client.Resend.Do looks at to send a request again.
func (r Reply) Err() error {
	if r.Status < 300 {
		return nil
	}
	var e api.Error
	if json.Unmarshal(r.Body, &e) != nil || e.StatusCode == 0 {
		return api.NewError(r.Status, "", string(bytes.TrimSpace(r.Body)))
	}
	return &e
}

// ReadReply reads resp's answer, closing its body, into a Reply named by
// its request: a test then checks the status before it reads the body
// (Decode, DecodeError) and fails naming the whole answer.
func ReadReply(resp *http.Response) (Reply, error) {
	defer resp.Body.Close()
	r := Reply{Status: resp.StatusCode, Header: resp.Header}
	if resp.Request != nil {
		r.Method, r.Path = resp.Request.Method, resp.Request.URL.String()
	}
	var err error
	if r.Body, err = io.ReadAll(resp.Body); err != nil {
		return r, fmt.Errorf("read the answer of %s %s: %w", r.Method, r.Path, err)
	}
	return r, nil
}

// Capture returns a context whose calls through a ValidatingTransport record
// their raw answer in the returned Reply: a typed pkg/client call made with it
// can still assert on the status and headers.
func Capture(ctx context.Context) (context.Context, *Reply) {
	r := &Reply{}
	return context.WithValue(ctx, captureKey{}, r), r
}

// Try sends a request with key (empty: none) through client.Do: body is sent
// as JSON, or as-is when it is a string or []byte; hdr adds headers. An HTTP
// error status is a Reply, not an error; err is a transport failure. The
// request is sent once (pkg/client's resending of a 503 leader_unreachable
// is off), so the Reply is that request's answer.
func (a *API) Try(key, method, path string, body any, hdr map[string]string) (Reply, error) {
	ctx, r := Capture(context.Background())
	switch b := body.(type) {
	case string:
		body = strings.NewReader(b)
	case []byte:
		body = bytes.NewReader(b)
	}
	h := http.Header{}
	for k, v := range hdr {
		h.Set(k, v)
	}
	c := a.Client(key)
	c.LeaderWait = -1 // the coordinator's own answer, a 503 leader_unreachable too
	_, err := c.Do(ctx, method, path, body, io.Discard, h)
	if r.Header == nil { // no answer reached the transport
		return Reply{Method: method, Path: path}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	return *r, nil
}

// TryResending is Try sent again as p says (pkg/client's policy,
// client.Resend: a 503 an election answers, with Retry-After, for a request
// that sending again cannot apply twice), its waits within ctx: a test's
// rig sends as a client does. The Reply is the last answer; err a
// transport failure, which is not sent again.
func (a *API) TryResending(ctx context.Context, p client.Resend, key, method, path string, body any, hdr map[string]string) (Reply, error) {
	h := http.Header{}
	for k, v := range hdr {
		h.Set(k, v)
	}
	var rep Reply
	var err error
	_ = p.Do(ctx, method, body, h, func() (http.Header, error) {
		if rep, err = a.Try(key, method, path, body, hdr); err != nil {
			return nil, err
		}
		return rep.Header, rep.Err()
	})
	return rep, err
}

// Call is Try failing the test on a transport error.
func (a *API) Call(key, method, path string, body any, hdr map[string]string) Reply {
	a.T.Helper()
	r, err := a.Try(key, method, path, body, hdr)
	if err != nil {
		a.T.Fatal(err)
	}
	return r
}
