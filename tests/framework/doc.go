// Package framework starts hostplane for tests: coordinators, agents and the
// binaries they run, so that every test that needs a cluster starts it the same
// way. The models are etcd's tests/framework and Caddy's caddytest.
//
// What it offers:
//
//   - Builds. BuildBinary and Binary build a package of this tree once per test
//     binary (Coordinator, Ctl, AgentBinary, AgentSim); BuildOptions.Version
//     stamps another version string (-ldflags -X …/pkg/version.Version=…), so a
//     test can replace one build by another. Call Main from TestMain to remove
//     the binaries when the tests end.
//   - Cluster, the interface every cluster implements: node URLs, admin and /v1
//     clients, WaitLeader, Kill, Restart, Running.
//   - ProcessCluster (NewProcessCluster in tests, StartProcessCluster in tools
//     such as hostplane-bench): N hostplane-coordinator processes on loopback
//     with free ports, joined into one Raft cluster. Each CoordinatorProcess
//     can be killed (SIGKILL), stopped (SIGTERM), paused (SIGSTOP) and resumed
//     (SIGCONT), restarted, or restarted with another binary (RestartWith).
//     Data directories, admin sockets and logs live in t.TempDir(); a failed
//     test prints the tail of every log.
//   - The in-process cluster is coordinator/internal/testcluster (it implements
//     Cluster): it runs server.Server inside the test process and its tests
//     reach into it, so it stays where Go's internal rule lets it import the
//     coordinator's packages.
//   - Agent, the interface of agent processes: AgentProcess is a real
//     hostplane-agent against the real libvirtd and the test guest
//     (testenv.RequireLibvirt and RequireGuest fail the test with the setup
//     command when they are missing); Sim runs a simulated agent
//     (hostplane-agent-sim, or the session tests' scripted testagent: the real
//     agent session code without libvirt) and reads its JSON events.
//   - testenv: finding libvirtd and the test guest, per-test name prefixes and
//     cleanup of domains and pools.
//
// Packages under tests/ (tests/e2e, tests/upgrade) are whole-system tests:
// scripts/run-tests.sh runs each of them alone, after the unit tests. The
// framework's own test (TestCoordinatorProcessControls) runs with the unit tests.
package framework
