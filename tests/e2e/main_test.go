package e2e

import (
	"os"
	"testing"
	"time"

	"github.com/hostplane/hostplane/tests/framework"
)

func TestMain(m *testing.M) { os.Exit(framework.Main(m)) }

// Liveness settings every test cluster runs with: short, so that unreachability
// and failover are observed in seconds.
const (
	pingInterval = 200 * time.Millisecond
	agentGrace   = 2 * time.Second
)

type clusterOpts struct {
	n int
	// actionDeadline is passed as --action-deadline (0: the coordinator default).
	actionDeadline time.Duration
	// agentStats is the agent's -stats-interval (0: 1s).
	agentStats time.Duration
	// bridges are the agent's -bridge flags (they must exist).
	bridges []string
}

// newCluster starts opts.n coordinator processes with agent listeners and
// webhooks, joins them and waits until every one is ready; everything is
// killed and removed when the test ends.
func newCluster(t testing.TB, opts clusterOpts) *framework.ProcessCluster {
	t.Helper()
	bin := framework.Coordinator(t)
	if opts.actionDeadline > 0 && !framework.HasFlag(bin, "action-deadline") {
		t.Fatalf("hostplane-coordinator has no --action-deadline flag (needed to fail actions of an absent node in %s)", opts.actionDeadline)
	}
	return framework.NewProcessCluster(t, framework.ProcessOptions{N: opts.n, Bin: bin,
		Secret: "e2e-cluster-secret-0123456789", RaftTimeout: framework.RaftTimeout, LogLevel: "debug",
		Agents: true, AgentPing: pingInterval, AgentGrace: agentGrace, Webhooks: true,
		Extra: func(int, *framework.CoordinatorProcess) []string {
			if opts.actionDeadline > 0 {
				return []string{"--action-deadline", opts.actionDeadline.String()}
			}
			return nil
		}})
}
