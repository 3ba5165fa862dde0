package httpapi

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"testing"
)

// TestAddressTableMetrics: the metrics listener shows the per-address table
// of requests without a valid key filling to its cap (its entries, and the
// cap: 100,000 by default) and the requests of the addresses a full table
// had no room for, counted in the shared window; an address the table holds
// is still counted in its own window.
func TestAddressTableMetrics(t *testing.T) {
	node := leadingNode(t, t.TempDir())
	zero := func() float64 { return 0 }
	trusted, err := ParseTrustedProxies([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	const capacity = 3
	m := NewMetrics(zero, zero)
	a := New(Config{NodeID: "n1", IPRateLimit: 100, TrustedProxies: trusted, IPWindows: capacity}, node, slog.New(slog.DiscardHandler), nil, m)
	srv := httptest.NewServer(a.Handler(nil))
	t.Cleanup(srv.Close)
	met := httptest.NewServer(m.MetricsHandler())
	t.Cleanup(met.Close)

	scrape := func(m *httptest.Server, name string) float64 {
		t.Helper()
		resp, err := http.Get(m.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		v := regexp.MustCompile(`(?m)^` + name + ` (\S+)$`).FindSubmatch(b)
		if v == nil {
			t.Fatalf("/metrics has no %s:\n%s", name, b)
		}
		f, _ := strconv.ParseFloat(string(v[1]), 64)
		return f
	}
	// fromAddr asks for GET /openapi.json (no key: the address's budget)
	// as client address addr, behind the trusted proxy 127.0.0.1.
	fromAddr := func(addr string) {
		t.Helper()
		req, _ := http.NewRequest("GET", srv.URL+"/openapi.json", nil)
		req.Header.Set("X-Forwarded-For", addr)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("X-RateLimit-Limit") != "100" {
			t.Fatalf("GET /openapi.json from %s: %d, X-RateLimit-Limit %q", addr, resp.StatusCode, resp.Header.Get("X-RateLimit-Limit"))
		}
	}
	check := func(when string, entries, overflow float64) {
		t.Helper()
		if got := scrape(met, "hostplane_ip_rate_windows"); got != entries {
			t.Errorf("%s: hostplane_ip_rate_windows %v, want %v", when, got, entries)
		}
		if got := scrape(met, "hostplane_ip_rate_overflow_requests_total"); got != overflow {
			t.Errorf("%s: hostplane_ip_rate_overflow_requests_total %v, want %v", when, got, overflow)
		}
	}

	if got := scrape(met, "hostplane_ip_rate_windows_max"); got != capacity {
		t.Errorf("hostplane_ip_rate_windows_max %v, want %d", got, capacity)
	}
	check("before any request", 0, 0)
	for i := 1; i <= capacity; i++ {
		fromAddr(fmt.Sprintf("203.0.113.%d", i))
		fromAddr(fmt.Sprintf("203.0.113.%d", i))
	}
	check("the table full", capacity, 0)
	for i := capacity + 1; i <= capacity+2; i++ {
		fromAddr(fmt.Sprintf("203.0.113.%d", i))
		fromAddr(fmt.Sprintf("203.0.113.%d", i))
	}
	check("two addresses past the cap, two requests each", capacity, 4)
	fromAddr("203.0.113.1") // held: its own window
	check("an address the table holds", capacity, 4)

	// The default cap is unchanged.
	dm := NewMetrics(zero, zero)
	New(Config{NodeID: "n1"}, node, slog.New(slog.DiscardHandler), nil, dm)
	dmet := httptest.NewServer(dm.MetricsHandler())
	t.Cleanup(dmet.Close)
	if got := scrape(dmet, "hostplane_ip_rate_windows_max"); got != 100_000 {
		t.Errorf("default hostplane_ip_rate_windows_max %v, want 100000", got)
	}
}
