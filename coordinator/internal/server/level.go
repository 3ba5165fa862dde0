package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/httpapi"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/internal/clock"
	"github.com/hostplane/hostplane/pkg/api"
)

// levelJob raises the cluster's semantics level (fsm/level.go) once every
// member's binary applies a newer one: the last step of a rolling upgrade
// happens by itself, seconds after the last coordinator restarted on the new
// release. It asks the members every few seconds, also at the leader's own
// level (nothing to raise then), since `cluster status` shows each member's
// max level from these answers.
func (s *Server) levelJob(ctx context.Context) {
	clock.Every(ctx, 3*time.Second, func() { s.raiseLevel(ctx) })
}

// raiseLevel asks every member of the Raft configuration (voters and
// non-voters: all apply the log) the newest level its binary applies and
// proposes the lowest of them when that is above the cluster's level. A
// member that does not answer, or answers without a level (a release before
// levels), holds the level where it is.
func (s *Server) raiseLevel(ctx context.Context) {
	have := s.Node.FSM.ClusterLevel()
	levels, why := s.memberLevels(ctx)
	s.API.SetMemberLevels(levels)
	if have >= s.Node.FSM.MaxLevel() {
		return
	}
	if why != "" {
		if why != s.levelWhy {
			s.log.Info("semantics level stays where it is", "level", have, "max_level", s.Node.FSM.MaxLevel(), "because", why)
			s.levelWhy = why
		}
		return
	}
	lowest := s.Node.FSM.MaxLevel()
	for _, l := range levels {
		lowest = min(lowest, l)
	}
	if lowest <= have {
		return
	}
	// Held across the proposal: a restore's install decides on the level
	// whether to mark its backup (raftnode PreparedRestore.Install), and no
	// raise may commit between that read and the install.
	release := s.Node.HoldLevel()
	_, err := s.propose(ctx, fsm.CmdClusterLevel, fsm.ClusterLevel{Level: lowest})
	release()
	if err != nil {
		s.log.Warn("raising the semantics level failed; will retry", "to", lowest, "err", err)
		return
	}
	s.levelWhy = ""
	s.log.Info("semantics level raised: every coordinator applies it", "from", have, "to", lowest)
}

// memberLevels is each member's newest applied level; why says which member
// holds the level back ("" when every member answered).
func (s *Server) memberLevels(ctx context.Context) (map[string]uint16, string) {
	members, err := s.Node.Servers()
	if err != nil {
		return nil, "membership unknown: " + err.Error()
	}
	var addrs map[string]string
	_ = s.Node.FSM.Read(func(r store.ReadTx) error { addrs = r.ClusterAPIAddrs(); return nil })
	levels := map[string]uint16{}
	var held []string
	for _, m := range members {
		if m.ID == s.cfg.NodeID {
			levels[m.ID] = s.Node.FSM.MaxLevel()
			continue
		}
		l, err := s.askLevel(ctx, addrs[m.ID])
		if err != nil {
			held = append(held, m.ID+": "+err.Error())
			continue
		}
		levels[m.ID] = l
	}
	if len(held) > 0 {
		slices.Sort(held)
		return levels, strings.Join(held, "; ")
	}
	for _, id := range slices.Sorted(maps.Keys(levels)) {
		if levels[id] < s.Node.FSM.MaxLevel() {
			held = append(held, fmt.Sprintf("%s applies only up to %d", id, levels[id]))
		}
	}
	return levels, strings.Join(held, "; ")
}

// askLevel reads a member's cluster status through the cluster-internal
// admin mount: its max_level (a release before levels has none: level 1).
func (s *Server) askLevel(ctx context.Context, apiAddr string) (uint16, error) {
	if apiAddr == "" {
		return 0, fmt.Errorf("API address not registered yet")
	}
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, s.API.MemberURL(apiAddr)+"/internal/admin/cluster/status", nil)
	if err != nil {
		return 0, err
	}
	if s.cfg.ClusterSecret != "" {
		req.Header.Set(httpapi.HeaderClusterToken, s.cfg.ClusterSecret)
	}
	resp, err := s.API.ClusterClient().Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("status answered %s", resp.Status)
	}
	var st api.ClusterStatus
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&st); err != nil {
		return 0, fmt.Errorf("status: %w", err)
	}
	return max(st.MaxLevel, 1), nil
}
