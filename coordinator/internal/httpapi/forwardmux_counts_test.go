package httpapi

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// TestChannelCountsItsTraffic: a follower's forwarded writes show in the
// hostplane_forward_channel_* series of both ends as an operator scrapes
// them: every write is one frame each way, written and read at both ends,
// carried by at least one write and one read and never more writes than
// frames.
func TestChannelCountsItsTraffic(t *testing.T) {
	lead, key := hopLeader(t, true)
	fol := hopFollower(t, lead)
	zero := func() float64 { return 0 }
	scrape := func(a *API) map[string]float64 {
		m := NewMetrics(zero, zero)
		m.Register(a.fwd.countCollectors()...)
		rec := httptest.NewRecorder()
		m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		got := map[string]float64{}
		for line := range strings.Lines(rec.Body.String()) {
			if rest, ok := strings.CutPrefix(line, "hostplane_forward_channel_"); ok {
				var name string
				var v float64
				if _, err := fmt.Sscan(rest, &name, &v); err != nil {
					t.Fatalf("%q: %v", line, err)
				}
				if strings.Contains(name, `{end="`) {
					got[name] = v
				}
			}
		}
		if len(got) != 8 {
			t.Fatalf("forwarding channel series: %v, want 4 counts of each end", got)
		}
		return got
	}
	if f, l := scrape(fol.a), scrape(lead.a); f[`frames_written_total{end="follower"}`] != 0 || l[`frames_read_total{end="leader"}`] != 0 {
		t.Fatalf("before any write: follower %v, leader %v", f, l)
	}

	post := writer(&http.Client{}, fol.srv.URL, key)
	// The first write dials the channel and goes over it; the ones after it
	// find it open.
	if err := post(); err != nil {
		t.Fatal(err)
	}
	const clients, each = 16, 20
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				if err := post(); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	const n = 1 + clients*each
	f, l := scrape(fol.a), scrape(lead.a)
	for _, c := range []struct {
		end    map[string]float64
		name   string
		frames string
		calls  string
	}{
		{f, "follower", `frames_written_total{end="follower"}`, `writes_total{end="follower"}`},
		{f, "follower", `frames_read_total{end="follower"}`, `reads_total{end="follower"}`},
		{l, "leader", `frames_written_total{end="leader"}`, `writes_total{end="leader"}`},
		{l, "leader", `frames_read_total{end="leader"}`, `reads_total{end="leader"}`},
	} {
		if c.end[c.frames] != n || c.end[c.calls] < 1 {
			t.Errorf("%s end: %s %v, %s %v; want %d frames in at least one call", c.name, c.frames, c.end[c.frames], c.calls, c.end[c.calls], n)
		}
	}
	for _, end := range []map[string]float64{f, l} {
		for k := range end {
			if strings.HasPrefix(k, "writes_total") && end[k] > n {
				t.Errorf("%s %v: more writes than frames (%d)", k, end[k], n)
			}
		}
	}
	// Each end counts only its own side: the follower served no channel,
	// the leader forwarded nothing.
	if f[`frames_read_total{end="leader"}`] != 0 || l[`frames_written_total{end="follower"}`] != 0 {
		t.Errorf("the other end's counts: follower %v, leader %v", f, l)
	}
}
