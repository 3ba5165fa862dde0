package bench

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// TestParseChannelTraffic: the forwarding channel counts of both ends are
// read from a coordinator's exposition (Prometheus's float formats, the
// requests counter of the same prefix ignored), and a phase's frames per
// write and per read are its differences' ratios.
func TestParseChannelTraffic(t *testing.T) {
	text := `# HELP hostplane_forward_channel_frames_written_total Frames this end of the forwarding channels wrote. end: follower (to the leader) or leader (from the followers).
# TYPE hostplane_forward_channel_frames_written_total counter
hostplane_forward_channel_frames_written_total{end="follower"} 1.2e+06
hostplane_forward_channel_frames_written_total{end="leader"} 40
hostplane_forward_channel_frames_read_total{end="follower"} 1.1e+06
hostplane_forward_channel_frames_read_total{end="leader"} 30
hostplane_forward_channel_reads_total{end="follower"} 100000
hostplane_forward_channel_reads_total{end="leader"} 15
hostplane_forward_channel_requests_total 999
hostplane_forward_channel_writes_total{end="follower"} 300000
hostplane_forward_channel_writes_total{end="leader"} 8
`
	got := parseChannelTraffic(text)
	want := channelTraffic{{1.2e6, 300000, 1.1e6, 100000}, {40, 8, 30, 15}}
	if got != want {
		t.Fatalf("parsed %+v, want %+v", got, want)
	}
	later := channelTraffic{{1.2e6 + 400, 300000 + 100, 1.1e6 + 400, 100000 + 40}, {40 + 400, 8 + 50, 30 + 400, 15 + 80}}
	s := later.minus(got).String()
	for _, w := range []string{"followers 4.00 (400 frames) / 10.00 (400 frames)", "leader 8.00 (400 frames) / 5.00 (400 frames)"} {
		if !strings.Contains(s, w) {
			t.Errorf("%q lacks %q", s, w)
		}
	}
	if s := got.minus(got).String(); s != "" {
		t.Errorf("no frame written: %q, want nothing", s)
	}
}

// TestChannelTrafficNamesAMissingMember: when one member's /metrics cannot
// be read (a 500 here), the phase shows no channel figure but says whose
// metrics are missing, and a merge of rounds keeps saying so; before, the
// other members' counts were summed and printed as the cluster's figure.
func TestChannelTrafficNamesAMissingMember(t *testing.T) {
	counts := func(frames, writes int) string {
		return fmt.Sprintf("hostplane_forward_channel_frames_written_total{end=\"follower\"} %d\nhostplane_forward_channel_writes_total{end=\"follower\"} %d\n", frames, writes)
	}
	var mu sync.Mutex
	bodies := []string{counts(0, 0), counts(0, 0), counts(0, 0)}
	broken := -1
	var urls []string
	for i := range bodies {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			defer mu.Unlock()
			if i == broken {
				http.Error(w, "collector failed", http.StatusInternalServerError)
				return
			}
			_, _ = w.Write([]byte(bodies[i]))
		}))
		defer srv.Close()
		urls = append(urls, srv.URL)
	}
	before, missing := sumChannelTraffic(urls)
	if missing != nil {
		t.Fatalf("every member answers, yet %v missing", missing)
	}
	mu.Lock()
	bodies = []string{counts(300, 100), counts(300, 100), counts(300, 100)}
	broken = 1
	mu.Unlock()
	after, missing := sumChannelTraffic(urls)
	if len(missing) != 1 || !strings.Contains(missing[0], "member 1") || !strings.Contains(missing[0], urls[1]) {
		t.Fatalf("member 1 answered 500: missing %v, want it named", missing)
	}
	if after[0].writes != 200 {
		t.Errorf("the readable members' writes summed to %v, want 200", after[0].writes)
	}
	partial := Result{Name: "spread", OK: 100, Channel: after.minus(before), ChannelMissing: missing}
	whole := Result{Name: "spread", OK: 100, Channel: after.minus(before)}
	for _, r := range []Result{partial, merge("spread", []Result{whole, partial}), merge("spread", []Result{partial, whole})} {
		s := r.String()
		if strings.Contains(s, "frames per write") || !strings.Contains(s, "not counted") || !strings.Contains(s, "member 1") {
			t.Errorf("a phase lacking member 1's metrics shows %q; want no channel figure and member 1 named", s)
		}
	}
	if s := whole.String(); !strings.Contains(s, "frames per write") {
		t.Errorf("a phase with every member's metrics shows %q; want the channel figure", s)
	}
}

// TestEtcdLeaderSearchChecksTheStatus: the etcd leader search takes a
// member to lead only from a 200 status naming it as the leader; a refusal
// (even one whose body would decode as a status) or a body that is not a
// member's status is an error carrying the answer, not "does not lead".
func TestEtcdLeaderSearchChecksTheStatus(t *testing.T) {
	status, body := http.StatusOK, ""
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v3/maintenance/status" || r.Method != "POST" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	defer srv.Close()
	for _, tc := range []struct {
		status     int
		body       string
		lead       bool
		errHolding string
	}{
		{200, `{"header":{"member_id":"7"},"leader":"7"}`, true, ""},
		{200, `{"header":{"member_id":"7"},"leader":"9"}`, false, ""},
		{503, `{"header":{"member_id":"7"},"leader":"7"}`, false, "503"},
		{500, `etcdserver: request timed out`, false, "request timed out"},
		{200, `<html>proxy</html>`, false, "not a member's status"},
	} {
		status, body = tc.status, tc.body
		lead, err := etcdLeads(srv.Client(), srv.URL)
		if lead != tc.lead || (tc.errHolding == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.errHolding)) {
			t.Errorf("%d %s: leads %v, %v; want %v, an error holding %q", tc.status, tc.body, lead, err, tc.lead, tc.errHolding)
		}
	}
}
