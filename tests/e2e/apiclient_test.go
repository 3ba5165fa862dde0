package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/hostplane/hostplane/pkg/api"
)

// apiClient makes /v1 calls with one API key against one coordinator and checks
// every response against the /openapi.json that coordinator serves.
type apiClient struct {
	t      testing.TB
	base   string
	key    string
	hc     *http.Client
	router routers.Router
	// validateOff skips the schema checks (benchmarks time the API, not them).
	validateOff bool
}

func newAPIClient(t testing.TB, base, key string) *apiClient {
	t.Helper()
	hc := &http.Client{Timeout: 15 * time.Second}
	resp, err := hc.Get(base + "/openapi.json")
	if err != nil {
		t.Fatalf("GET %s/openapi.json: %v", base, err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s/openapi.json: %s", base, resp.Status)
	}
	doc, err := openapi3.NewLoader().LoadFromData(raw)
	if err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	doc.Servers = openapi3.Servers{{URL: base + "/v1"}}
	r, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatalf("openapi.json router: %v", err)
	}
	return &apiClient{t: t, base: base, key: key, hc: hc, router: r}
}

// reply is one HTTP answer.
type reply struct {
	method, path string
	status       int
	header       http.Header
	body         []byte
}

func (r reply) String() string {
	return fmt.Sprintf("%s %s → %d %.400s", r.method, r.path, r.status, r.body)
}

// decode unmarshals the body, failing the test on error.
func (r reply) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r, err)
	}
}

// code is the error envelope's code.
func (r reply) code() string {
	var e api.Error
	_ = json.Unmarshal(r.body, &e)
	return e.Code
}

// do sends a request and fails the test on a transport error.
func (c *apiClient) do(method, path string, body any) reply {
	c.t.Helper()
	r, err := c.try(method, path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	return r
}

// expect sends a request and fails the test unless the status is want.
func (c *apiClient) expect(want int, method, path string, body any) reply {
	c.t.Helper()
	r := c.do(method, path, body)
	if r.status != want {
		c.t.Fatalf("want %d: %s", want, r)
	}
	return r
}

// try sends a request; safe from any goroutine (schema mismatches are Errorf).
func (c *apiClient) try(method, path string, body any) (reply, error) {
	var raw []byte
	if body != nil {
		raw, _ = json.Marshal(body)
	}
	req, err := http.NewRequest(method, c.base+path, bytes.NewReader(raw))
	if err != nil {
		return reply{}, err
	}
	if raw != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return reply{}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	r := reply{method: method, path: path, status: resp.StatusCode, header: resp.Header, body: out}
	if strings.HasPrefix(path, "/v1/") && !c.validateOff {
		c.validate(req, raw, r)
	}
	return r, nil
}

// validate checks that the status is documented for the route and the body
// matches its schema.
func (c *apiClient) validate(req *http.Request, body []byte, r reply) {
	vreq, _ := http.NewRequest(req.Method, req.URL.String(), bytes.NewReader(body))
	vreq.Header = req.Header.Clone()
	route, params, err := c.router.FindRoute(vreq)
	if err != nil {
		if r.status == http.StatusNotFound || r.status == http.StatusMethodNotAllowed {
			return // an undocumented path must not be served; it was not
		}
		c.t.Errorf("%s %s answered %d but is not in openapi.json: %v", req.Method, req.URL.Path, r.status, err)
		return
	}
	in := &openapi3filter.RequestValidationInput{Request: vreq, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: r.status, Header: r.header, Body: io.NopCloser(bytes.NewReader(r.body)),
		Options: &openapi3filter.Options{IncludeResponseStatus: true},
	}
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		c.t.Errorf("%s %s → %d does not match openapi.json: %v\nbody: %.300s", req.Method, req.URL.Path, r.status, err, r.body)
	}
}

// server reads GET /v1/servers/{id}, retrying 503s (leadership settling).
func (c *apiClient) server(id string) api.Server {
	c.t.Helper()
	r := c.retry503(http.MethodGet, "/v1/servers/"+id, nil, 20*time.Second)
	if r.status != http.StatusOK {
		c.t.Fatalf("read server: %s", r)
	}
	var s api.Server
	r.decode(c.t, &s)
	return s
}

// retry503 repeats a request while it answers 503 or fails to connect, as a
// client does while a new leader is elected.
func (c *apiClient) retry503(method, path string, body any, timeout time.Duration) reply {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		r, err := c.try(method, path, body)
		if err == nil && r.status != http.StatusServiceUnavailable {
			return r
		}
		if time.Now().After(deadline) {
			if err != nil {
				c.t.Fatalf("%s %s: still failing after %s: %v", method, path, timeout, err)
			}
			c.t.Fatalf("still 503 after %s: %s", timeout, r)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// accepted sends an action request, requires 202 and returns its body.
func (c *apiClient) accepted(method, path string, body any) api.ActionAccepted {
	c.t.Helper()
	r := c.expect(http.StatusAccepted, method, path, body)
	var acc api.ActionAccepted
	r.decode(c.t, &acc)
	if acc.Action.ID == "" {
		c.t.Fatalf("202 without an action id: %s", r)
	}
	return acc
}

// waitAction polls GET /v1/actions/{id} until the action finishes and returns it;
// the failure message shows the last state seen.
func (c *apiClient) waitAction(id string, timeout time.Duration) api.Action {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for {
		r, err := c.try(http.MethodGet, "/v1/actions/"+id, nil)
		switch {
		case err != nil:
			last = err.Error()
		case r.status == http.StatusOK:
			var a api.Action
			r.decode(c.t, &a)
			if a.Finished() {
				return a
			}
			last = string(r.body)
		case r.status == http.StatusServiceUnavailable:
			last = r.String()
		default:
			c.t.Fatalf("follow action %s: %s", id, r)
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("action %s not finished after %s; last: %s", id, timeout, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitSuccess waits for an action and requires status success.
func (c *apiClient) waitSuccess(id string, timeout time.Duration) api.Action {
	c.t.Helper()
	a := c.waitAction(id, timeout)
	if a.Status != api.ActionSuccess {
		c.t.Fatalf("action %s (%s) ended %s: %+v", id, a.Command, a.Status, a.Error)
	}
	if a.Progress != 100 || a.FinishedAt == nil {
		c.t.Errorf("successful action %s: progress %d, finished_at %v", id, a.Progress, a.FinishedAt)
	}
	return a
}
