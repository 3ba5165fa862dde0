package framework

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/hostplane/hostplane/pkg/api"
)

// fatalTB records a Fatalf and ends the goroutine as testing.T's does; every
// other method of testing.TB is left nil (a call to one is a test bug).
type fatalTB struct {
	testing.TB
	fatal string
}

func (f *fatalTB) Helper() {}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.fatal = fmt.Sprintf(format, args...)
	panic(f)
}

// failure calls fn with a fatalTB and returns what it failed with ("" when it
// did not).
func failure(fn func(testing.TB)) string {
	f := &fatalTB{}
	func() {
		defer func() {
			if p := recover(); p != nil && p != f {
				panic(p)
			}
		}()
		fn(f)
	}()
	return f.fatal
}

// TestDecodeRefusesAnErrorAnswer: a refused read (503 with the error
// envelope) decoded as a resource is a zero resource, a wallet of 0 cents
// (what a test once saw as "charged -4500 cents"): Decode fails the test,
// naming the answer; a 2xx decodes. DecodeError is the other way round.
func TestDecodeRefusesAnErrorAnswer(t *testing.T) {
	refused := Reply{Method: "GET", Path: "/v1/billing/wallet", Status: http.StatusServiceUnavailable,
		Body: []byte(`{"statusCode":503,"error":"Service Unavailable","message":"no leader","code":"no_leader"}`)}
	var w api.Wallet
	got := failure(func(t testing.TB) { refused.Decode(t, &w) })
	if !strings.Contains(got, "GET /v1/billing/wallet → 503") || !strings.Contains(got, "no_leader") {
		t.Errorf("Decode of a 503 into a wallet: failed with %q (wallet %+v); want the test failed naming the 503 answer", got, w)
	}

	ok := Reply{Method: "GET", Path: "/v1/billing/wallet", Status: http.StatusOK, Body: []byte(`{"balance_usd_cents":4500,"currency":"USD"}`)}
	if got := failure(func(t testing.TB) { ok.Decode(t, &w) }); got != "" || w.BalanceUsdCents != 4500 {
		t.Errorf("Decode of a 200 wallet: failed with %q, wallet %+v; want 4500 cents", got, w)
	}
	bad := Reply{Method: "GET", Path: "/v1/billing/wallet", Status: http.StatusOK, Body: []byte(`{"balance_usd_cents":"many"}`)}
	if got := failure(func(t testing.TB) { bad.Decode(t, &w) }); !strings.Contains(got, "balance_usd_cents") {
		t.Errorf("Decode of a 200 that is not a wallet: failed with %q; want the decode error", got)
	}
}

// TestDecodeErrorRefusesASuccess: DecodeError reads a refusal's envelope,
// and fails the test on a 2xx (whose zero envelope would pass a check that
// its code is not some code) and on a body that is not an envelope.
func TestDecodeErrorRefusesASuccess(t *testing.T) {
	refused := Reply{Method: "GET", Path: "/v1/billing/wallet", Status: http.StatusServiceUnavailable,
		Body: []byte(`{"statusCode":503,"error":"Service Unavailable","message":"no leader","code":"no_leader"}`)}
	var e api.Error
	if got := failure(func(t testing.TB) { e = refused.DecodeError(t) }); got != "" || e.Code != "no_leader" || e.StatusCode != 503 {
		t.Errorf("DecodeError of a 503 envelope: failed with %q, %+v; want code no_leader", got, e)
	}
	ok := Reply{Method: "GET", Path: "/v1/billing/wallet", Status: http.StatusOK, Body: []byte(`{"balance_usd_cents":4500}`)}
	if got := failure(func(t testing.TB) { refused.DecodeError(t); ok.DecodeError(t) }); !strings.Contains(got, "→ 200") {
		t.Errorf("DecodeError of a 200: failed with %q; want the test failed naming the 200 answer", got)
	}
	page := Reply{Method: "GET", Path: "/v1/billing/wallet", Status: http.StatusBadGateway, Body: []byte(`<html>bad gateway</html>`)}
	if got := failure(func(t testing.TB) { page.DecodeError(t) }); !strings.Contains(got, "not an envelope") {
		t.Errorf("DecodeError of an HTML 502: failed with %q; want the test failed, not an envelope", got)
	}

	// Envelope is the same check with the failure as an error: a check
	// among others reports it and goes on.
	if e, err := refused.Envelope(); err != nil || e.Code != "no_leader" || e.StatusCode != 503 {
		t.Errorf("Envelope of a 503 envelope: %+v, %v; want code no_leader", e, err)
	}
	other := Reply{Method: "OPTIONS", Path: "/v1/tickets", Status: http.StatusMethodNotAllowed, Body: refused.Body}
	for _, r := range []Reply{ok, page, other} {
		if e, err := r.Envelope(); err == nil || !strings.Contains(err.Error(), r.String()) || e != (api.Error{}) {
			t.Errorf("Envelope of %s: %+v, %v; want an error naming the answer (a 2xx, not an envelope, a 503's envelope with a 405)", r, e, err)
		}
	}
}
