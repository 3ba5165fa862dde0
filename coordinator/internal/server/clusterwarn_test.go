package server

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/hostplane/hostplane/coordinator/internal/httpapi"
	"github.com/hostplane/hostplane/coordinator/internal/raftnode"
)

// TestClusterWarningsReadTheConfigurationOncePerTick: registerLoop's tick
// (warnCluster) reads the Raft configuration once for its two warnings (no
// --public-url, an open Raft port), not once per warning, and not at all when
// neither applies; each warning is logged once per cluster size it sees.
// Before, each warning read the configuration itself: two reads a tick.
func TestClusterWarningsReadTheConfigurationOncePerTick(t *testing.T) {
	for _, tc := range []struct {
		name      string
		cfg       Config
		reads     int // per tick
		publicURL bool
		raftPort  bool
	}{
		{"both", Config{}, 1, true, true},
		{"no public url", Config{ClusterSecret: "s"}, 1, true, false},
		{"open raft port", Config{PublicURL: "https://api.example.com"}, 1, false, true},
		{"neither", Config{PublicURL: "https://api.example.com", RaftTLSCert: "c.pem"}, 0, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			s := &Server{cfg: tc.cfg, log: slog.New(slog.NewTextHandler(&buf, nil)), Node: &raftnode.Node{Addr: "127.0.0.1:7000"}}
			size, reads := 0, 0
			servers := func() ([]raftnode.Server, error) {
				reads++
				if size < 0 {
					return nil, errors.New("no configuration")
				}
				return make([]raftnode.Server, size), nil
			}
			var w clusterWarned
			for i, n := range []int{1, 2, 2, -1, 3, 1, 3} { // the sizes of 7 ticks
				size = n
				s.warnCluster(&w, servers)
				if reads != (i+1)*tc.reads {
					t.Fatalf("tick %d: %d reads of the Raft configuration in all; want %d a tick", i+1, reads, tc.reads)
				}
			}
			out := buf.String()
			for _, c := range []struct {
				on  bool
				msg func(int) string
			}{{tc.publicURL, httpapi.NoPublicURLWarning}, {tc.raftPort, httpapi.OpenRaftPortWarning}} {
				for _, n := range []int{2, 3} {
					want := 0
					if c.on {
						want = 1
					}
					if got := strings.Count(out, fmt.Sprintf("%q", c.msg(n))); got != want {
						t.Errorf("%q logged %d times, want %d:\n%s", c.msg(n), got, want, out)
					}
				}
			}
		})
	}
}
