package bench

import (
	"strings"
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
