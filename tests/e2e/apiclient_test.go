package e2e

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/client"
	"github.com/hostplane/hostplane/tests/framework"
)

// apiClient calls /v1 with one API key against one coordinator through
// pkg/client, every response checked against the /openapi.json that coordinator
// serves (framework.ValidatingTransport). cl makes typed calls; do, try and
// expect assert on raw answers (status, error code) and go through client.Do.
type apiClient struct {
	t   testing.TB
	api *framework.API
	key string
	cl  *client.Client
}

func newAPIClient(t testing.TB, base, key string) *apiClient {
	t.Helper()
	a := framework.NewAPI(t, base, nil)
	return &apiClient{t: t, api: a, key: key, cl: a.Client(key)}
}

// reply is one HTTP answer.
type reply = framework.Reply

// do sends a request and fails the test on a transport error.
func (c *apiClient) do(method, path string, body any) reply {
	c.t.Helper()
	return c.api.Call(c.key, method, path, body, nil)
}

// expect sends a request and fails the test unless the status is want.
func (c *apiClient) expect(want int, method, path string, body any) reply {
	c.t.Helper()
	r := c.do(method, path, body)
	if r.Status != want {
		c.t.Fatalf("want %d: %s", want, r)
	}
	return r
}

// try sends a request; safe from any goroutine (schema mismatches are Errorf).
func (c *apiClient) try(method, path string, body any) (reply, error) {
	return c.api.Try(c.key, method, path, body, nil)
}

// retryable is a 503 (leadership settling) or a transport failure: what a
// client retries while a new leader is elected.
func retryable(err error) bool {
	st := api.StatusOf(err)
	return st == 0 || st == http.StatusServiceUnavailable
}

// retry503 makes a typed call until it answers other than 503 or a transport
// failure, as a client does while a new leader is elected (20 s at most); any
// other error fails the test.
func retry503[T any](c *apiClient, what string, call func(context.Context) (T, error)) T {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		v, err := call(context.Background())
		if err == nil {
			return v
		}
		if !retryable(err) {
			c.t.Fatalf("%s: %v", what, err)
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s: still failing after 20s: %v", what, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// server reads GET /v1/servers/{id}, retrying 503s (leadership settling).
func (c *apiClient) server(id string) api.Server {
	c.t.Helper()
	return retry503(c, "read server "+id, func(ctx context.Context) (api.Server, error) { return c.cl.Server(ctx, id) })
}

// accept makes a typed call that starts an action, requires 202 and returns
// its body.
func (c *apiClient) accept(call func(context.Context, *client.Client) (api.ActionAccepted, error)) api.ActionAccepted {
	c.t.Helper()
	ctx, r := framework.Capture(context.Background())
	acc, err := call(ctx, c.cl)
	if err != nil || r.Status != http.StatusAccepted {
		c.t.Fatalf("want 202: %s (%v)", r, err)
	}
	if acc.Action.ID == "" {
		c.t.Fatalf("202 without an action id: %s", r)
	}
	return acc
}

// power sends POST /v1/servers/{id}/power/{action} (req nil: no body),
// requires 202 and returns its body.
func (c *apiClient) power(id, action string, req *api.PowerRequest) api.ActionAccepted {
	c.t.Helper()
	return c.accept(func(ctx context.Context, cl *client.Client) (api.ActionAccepted, error) {
		return cl.PowerServer(ctx, id, action, req, "")
	})
}

// snapshots lists a server's snapshots (GET /v1/servers/{id}/snapshots, 200).
func (c *apiClient) snapshots(id string) api.ServerSnapshotList {
	c.t.Helper()
	ctx, r := framework.Capture(context.Background())
	l, err := c.cl.ServerSnapshots(ctx, id)
	if err != nil || r.Status != http.StatusOK {
		c.t.Fatalf("want 200: %s (%v)", r, err)
	}
	return l
}

// waitAction polls GET /v1/actions/{id} until the action finishes and returns it;
// the failure message shows the last state seen.
func (c *apiClient) waitAction(id string, timeout time.Duration) api.Action {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for {
		a, err := c.cl.Action(context.Background(), id)
		switch {
		case err == nil:
			if a.Finished() {
				return a
			}
			last = string(a.Status)
		case retryable(err):
			last = err.Error()
		default:
			c.t.Fatalf("follow action %s: %v", id, err)
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
