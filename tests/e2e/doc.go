// Package integration tests hostplane end to end: coordinator processes in a Raft
// cluster, a real agent process enrolled over QUIC driving the real libvirtd with
// the TCG test guest, everything driven through the public HTTP API and the admin
// socket, with every /v1 response checked against /openapi.json.
package e2e
