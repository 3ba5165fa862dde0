package httpapi

import (
	"fmt"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestObserveMatchesLabelLookups: the series observe records (cached per
// route, method and status) scrape exactly as those of the label look-ups
// per request it replaces, past the cache's limits too, from concurrent
// requests.
func TestObserveMatchesLabelLookups(t *testing.T) {
	zero := func() float64 { return 0 }
	got, want := NewMetrics(zero, zero), NewMetrics(zero, zero)
	methods := 2*maxCachedSeries/40 + 3 // routes x methods overflow the cache
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < 40*methods*2; i += 4 {
				route, method := fmt.Sprintf("GET /v1/r%d", i%40), fmt.Sprintf("M%d", (i/40)%methods)
				status := 200 + i%(maxCachedStatuses+5) // and a route's statuses overflow theirs
				d := time.Duration(i%13) * time.Second / 2 // sums exact in any order
				got.observe(route, method, status, d)
				want.requests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
				want.latency.WithLabelValues(route, method).Observe(d.Seconds())
			}
		}(w)
	}
	wg.Wait()
	if p := got.series.m.Load(); p == nil || len(*p) != maxCachedSeries {
		t.Fatalf("cached series: want the cache full (%d)", maxCachedSeries)
	}
	scrape := func(m *Metrics) string {
		w := httptest.NewRecorder()
		m.Handler().ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
		var keep []string
		for _, l := range strings.Split(w.Body.String(), "\n") {
			if strings.HasPrefix(l, "hostplane_http_") {
				keep = append(keep, l)
			}
		}
		return strings.Join(keep, "\n")
	}
	g, wnt := scrape(got), scrape(want)
	if g != wnt {
		t.Fatalf("scrapes differ:\n%.2000s\nwant\n%.2000s", g, wnt)
	}
	if n := strings.Count(g, "hostplane_http_requests_total{"); n < 40*methods {
		t.Fatalf("%d request series", n)
	}
}
