package mcpserver

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/httpapi"
	"github.com/hostplane/hostplane/pkg/api"
)

// refuseAfter refuses a stream's credentials from its nth check on.
type refuseAfter struct {
	n      int32
	checks atomic.Int32
}

func (f *refuseAfter) Authenticate(*http.Request) (httpapi.Caller, *api.Error) {
	return httpapi.Caller{}, nil
}

func (f *refuseAfter) StreamRefusal(*http.Request, string) *api.Error {
	if f.checks.Add(1) >= f.n {
		return api.NewError(http.StatusUnauthorized, "revoked_api_key", "this API key was revoked")
	}
	return nil
}

// TestEndWithCredentialsChecksAtOnce: a session's GET stream whose key is
// refused by the time the stream starts ends at once, not a tick
// (streamAuthEvery) later; one refused later ends at the first check after
// that. Before, the loop waited a tick before its first check.
func TestEndWithCredentialsChecksAtOnce(t *testing.T) {
	r := httptest.NewRequest("GET", "/mcp", nil)
	for _, n := range []int32{1, 2} {
		authn := &refuseAfter{n: n}
		ctx, cancel := context.WithCancel(context.Background())
		start := time.Now()
		returned := make(chan struct{})
		go func() { endWithCredentials(ctx, cancel, authn, r); close(returned) }()
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(n+4) * streamAuthEvery):
			t.Fatalf("refused at check %d: the stream was not ended", n)
		}
		took := time.Since(start)
		// The ticker cannot fire before streamAuthEvery: a stream ended
		// sooner was checked at once, and one refused at check n, checked
		// at once, ends before n ticks. The whole tick is the slack (a
		// loaded machine, -race); a loop that waits a tick before its first
		// check ends at n ticks or later.
		if lo, hi := time.Duration(n-1)*streamAuthEvery, time.Duration(n)*streamAuthEvery; took < lo || took >= hi {
			t.Errorf("refused at check %d: ended after %v; want in [%v, %v)", n, took, lo, hi)
		}
		<-returned
		if got := authn.checks.Load(); got < n {
			t.Errorf("refused at check %d: %d checks", n, got)
		}
	}
}
