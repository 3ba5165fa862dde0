// Package robustness holds Jepsen-style tests of the coordinators as real OS
// processes: histories of a register driven through all three coordinators while
// the leader is killed or paused, checked for linearizability with porcupine, and
// a focused test that a resumed ex-leader never answers a read from its old state.
package robustness
