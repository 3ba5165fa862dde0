package client

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hostplane/hostplane/pkg/api"
)

// TestRefusedReadIsAnErrorNotAZeroValue: a typed read the coordinator
// refuses returns the refusal as an *api.Error (what api.StatusOf and the
// CLI look at), never the error envelope decoded into the resource (a
// wallet of 0 cents); a refusal whose body is not an envelope (a proxy's
// page) keeps its status too; and a 200 whose body is not the resource is
// a decode error, not a zero resource.
func TestRefusedReadIsAnErrorNotAZeroValue(t *testing.T) {
	answer := noLeader
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { answer(w) }))
	defer srv.Close()
	c := New(srv.URL, "k")
	c.LeaderWait = -1 // the first answer, not sent again

	w, err := c.Wallet(context.Background())
	if api.StatusOf(err) != http.StatusServiceUnavailable || !strings.Contains(err.Error(), "no_leader") {
		t.Errorf("wallet refused 503 no_leader: %+v, %v; want the 503 no_leader error", w, err)
	}
	answer = func(w http.ResponseWriter) {
		w.WriteHeader(http.StatusBadGateway)
		_, _ = w.Write([]byte("<html>bad gateway</html>"))
	}
	if w, err = c.Wallet(context.Background()); api.StatusOf(err) != http.StatusBadGateway || !strings.Contains(err.Error(), "bad gateway") {
		t.Errorf("wallet answered a 502 page: %+v, %v; want a 502 error holding the page", w, err)
	}
	answer = func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"balance_usd_cents":"many"}`))
	}
	if w, err = c.Wallet(context.Background()); err == nil || api.StatusOf(err) != 0 {
		t.Errorf("wallet answered 200 with a body that is not a wallet: %+v, %v; want a decode error", w, err)
	}
}
