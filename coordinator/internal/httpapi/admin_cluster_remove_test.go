package httpapi

import (
	"strings"
	"testing"

	"github.com/hostplane/hostplane/coordinator/internal/raftnode"
)

// TestRemovalLosesQuorum: a voter's removal is refused exactly when the
// voters left, counting the leader and every member its heartbeats reach,
// are fewer than a quorum of the voters left; non-voters count for nothing.
func TestRemovalLosesQuorum(t *testing.T) {
	v := func(id string) raftnode.Server { return raftnode.Server{ID: id, Suffrage: "Voter"} }
	nv := func(id string) raftnode.Server { return raftnode.Server{ID: id, Suffrage: "Nonvoter"} }
	three := []raftnode.Server{v("c1"), v("c2"), v("c3")}
	five := []raftnode.Server{v("c1"), v("c2"), v("c3"), v("c4"), v("c5")}
	for _, tc := range []struct {
		name        string
		members     []raftnode.Server
		id          string
		unreachable []string
		refuse      bool
		names       []string // in the refusal
	}{
		{"3 up, remove a follower", three, "c2", nil, false, nil},
		{"3 up, remove the leader", three, "c1", nil, false, nil},
		{"c3 down, remove c3", three, "c3", []string{"c3"}, false, nil},
		{"c3 down, remove c2", three, "c2", []string{"c3"}, true, []string{"c2", "c3", "1 of 2", "--force"}},
		{"c3 down, remove the leader", three, "c1", []string{"c3"}, true, []string{"c1", "c3"}},
		{"5, c4 c5 down, remove c2", five, "c2", []string{"c4", "c5"}, true, []string{"c4, c5", "2 of 4", "quorum is 3"}},
		{"5, c5 down, remove c2", five, "c2", []string{"c5"}, false, nil},
		{"5, c4 c5 down, remove c4", five, "c4", []string{"c4", "c5"}, false, nil},
		{"the last voter", []raftnode.Server{v("c1")}, "c1", nil, true, []string{"without a voter", "--force"}},
		{"a non-voter while others are down", []raftnode.Server{v("c1"), v("c2"), nv("c3")}, "c3", []string{"c2"}, false, nil},
		{"the leader's own id listed unreachable", three, "c2", []string{"c1"}, false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg := removalLosesQuorum(tc.members, "c1", tc.id, tc.unreachable)
			if (msg != "") != tc.refuse {
				t.Fatalf("refuse=%v, got %q", tc.refuse, msg)
			}
			for _, n := range tc.names {
				if !strings.Contains(msg, n) {
					t.Errorf("refusal %q does not name %q", msg, n)
				}
			}
		})
	}
}
