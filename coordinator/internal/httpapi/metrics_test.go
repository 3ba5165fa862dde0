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
			// Two rounds over every route and method, then more rounds
			// over method M0's routes alone, each round a status of its
			// own: M0's routes overflow their cache of statuses too (the
			// first pair each worker adds is one of them, so some are
			// cached).
			for i := w; i < 40*methods*(maxCachedStatuses+5); i += 4 {
				round, pair := i/(40*methods), i%(40*methods)
				if round >= 2 && pair >= 40 {
					continue
				}
				route, method := fmt.Sprintf("GET /v1/r%d", i%40), fmt.Sprintf("M%d", pair/40)
				status := 200 + round
				d := time.Duration(i%13) * time.Second / 2 // sums exact in any order
				got.observe(route, method, status, d)
				want.requests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
				want.latency.WithLabelValues(route, method).Observe(d.Seconds())
			}
		}(w)
	}
	wg.Wait()
	p := got.series.m.Load()
	if p == nil || len(*p) != maxCachedSeries {
		t.Fatalf("cached series: want the cache full (%d)", maxCachedSeries)
	}
	full := 0
	for k, s := range *p {
		wantN := 2
		if k.method == "M0" {
			wantN, full = maxCachedStatuses, full+1
		}
		if sc := s.statuses.Load(); sc == nil || len(*sc) != wantN {
			t.Fatalf("%v: cached statuses %v, want %d", k, sc, wantN)
		}
	}
	if full == 0 {
		t.Fatal("no route with more statuses than the cache holds was cached")
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
