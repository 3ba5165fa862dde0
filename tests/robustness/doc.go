// Package robustness holds Jepsen-style tests of the coordinators as real OS
// processes: histories driven through all three coordinators while the leader
// is killed or paused, or while the network between the coordinators is cut
// (partition_test.go: each coordinator in a network namespace of its own,
// framework.PartitionNet), checked for linearizability with porcupine (a
// register; the wallet, credited through the operator's API and debited by
// orders, each retried with its Idempotency-Key; a set of tickets), and a
// focused test that a resumed ex-leader never answers a read from its old
// state.
package robustness
