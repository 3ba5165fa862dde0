package bench

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestRoundTrip: the benchmark's clients count a request as done only when
// the answer has the status they want; anything else is an error.
func TestRoundTrip(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "POST" {
			w.WriteHeader(http.StatusCreated)
		}
		_, _ = w.Write([]byte(strings.Repeat("x", 64<<10)))
	}))
	defer srv.Close()
	hc := srv.Client()
	get := func() *http.Request { r, _ := http.NewRequest("GET", srv.URL, nil); return r }
	post := func() *http.Request { r, _ := http.NewRequest("POST", srv.URL, nil); return r }
	if err := roundTrip(hc, get(), 200); err != nil {
		t.Fatalf("GET wanting 200: %v", err)
	}
	if err := roundTrip(hc, post(), 201); err != nil {
		t.Fatalf("POST wanting 201: %v", err)
	}
	if err := roundTrip(hc, get(), 201); err == nil || err.Error() != "status 200" {
		t.Fatalf("GET wanting 201: got %v, want status 200", err)
	}
	// A hostplane error body: its code is in the error.
	coded := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"statusCode":503,"error":"Service Unavailable","message":"no leader","code":"no_leader"}`))
	}))
	defer coded.Close()
	req, _ := http.NewRequest("POST", coded.URL, nil)
	if err := roundTrip(coded.Client(), req, 201); err == nil || err.Error() != "status 503 no_leader" {
		t.Fatalf("a 503 no_leader: got %v", err)
	}
	srv.Close()
	if err := roundTrip(hc, get(), 200); err == nil {
		t.Fatal("a closed server: got no error")
	}
}
