package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/hostplane/hostplane/internal/sysd"
)

// notifyReady sends READY=1 once this coordinator really serves: its API
// listener answers /readyz with 200 (Raft open, a leader known, reachable and
// this node's state caught up with the commit index), or its Raft configuration
// is empty because it waits to be joined (--bootstrap=false), so that
// `systemctl start` of a new member does not block until the join.
func (s *Server) notifyReady(ctx context.Context) {
	url := "http://" + s.apiLn.Addr().String() + "/readyz"
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	sysd.Status(s.log, "waiting for a Raft leader")
	for {
		if s.probe(ctx, url) == nil {
			sysd.Ready(s.log, fmt.Sprintf("serving %s; leader %s", s.APIURL(), s.Node.LeaderID()))
			return
		}
		if srv, err := s.Node.Servers(); err == nil && len(srv) == 0 {
			sysd.Ready(s.log, "waiting to be joined (hostplanectl cluster join "+s.cfg.NodeID+" "+s.RaftAddr()+")")
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// probe GETs url and wants 200.
func (s *Server) probe(ctx context.Context, url string) error {
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return nil
}

// progress is the systemd watchdog's check: the API listener answers /healthz,
// and Raft applies: the leader passes a barrier (an entry through the log and
// the FSM), a follower's applied index moves whenever it lags the commit index.
// A member without a leader (an election, lost quorum) is alive, not hung.
type progress struct {
	s           *Server
	lastApplied uint64
}

func (p *progress) check(ctx context.Context) error {
	if err := p.s.probe(ctx, "http://"+p.s.apiLn.Addr().String()+"/healthz"); err != nil {
		return err
	}
	st := p.s.Node.Status()
	if st.State == "Shutdown" {
		return errors.New("raft has shut down")
	}
	if p.s.Node.IsLeader() {
		timeout := time.Second
		if dl, ok := ctx.Deadline(); ok {
			timeout = time.Until(dl)
		}
		if err := p.s.Node.Barrier(timeout); err != nil {
			return fmt.Errorf("raft barrier: %w", err)
		}
		return nil
	}
	if st.AppliedIndex < st.CommitIndex && st.AppliedIndex == p.lastApplied {
		return errors.New("raft: applied index stuck below the commit index since the last check")
	}
	p.lastApplied = st.AppliedIndex
	return nil
}
