// Package clustertest holds the coordinator's end-to-end tests: real Raft nodes on
// loopback, the real HTTP API and admin socket, responses checked against
// /openapi.json.
package clustertest
