package framework

import (
	"time"

	"github.com/hostplane/hostplane/pkg/client"
)

// Cluster is a running set of coordinators, whether each is an OS process
// (ProcessCluster) or a server inside the test process
// (coordinator/internal/testcluster.Cluster). Node indexes are 0-based and
// stable across kills and restarts.
type Cluster interface {
	// Len is the number of nodes, running or not.
	Len() int
	// URL is node i's API base URL (http://host:port).
	URL(i int) string
	// Admin is a client of node i's admin socket.
	Admin(i int) *client.Admin
	// Client is a /v1 client of node i with an API key.
	Client(i int, key string) *client.Client
	// WaitLeader waits until a running node leads and returns its index; it
	// fails the test after timeout.
	WaitLeader(timeout time.Duration) int
	// Kill stops node i abruptly, keeping its data.
	Kill(i int)
	// Restart starts a killed node again on the same data and addresses.
	Restart(i int)
	// Running reports whether node i is up.
	Running(i int) bool
}

// Agent is a running agent process, real (AgentProcess) or simulated (Sim).
type Agent interface {
	// Kill sends SIGKILL (a crash, a pulled plug) and waits for the exit.
	Kill()
	// Stop sends SIGTERM and waits for the exit (SIGKILL after a grace period).
	Stop()
	// Exited is closed when the process has exited.
	Exited() <-chan struct{}
}
