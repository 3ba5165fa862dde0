// Package hostplanepb is the wire contract between coordinators and agents: the
// protobuf messages (generated from hostplane.proto), the protocol version, the
// frame format on QUIC streams and the join-token format.
package hostplanepb

//go:generate ./generate.sh .

// ProtocolVersion is major*100 + minor. Peers of the same major interoperate;
// a minor bump only adds fields or message types.
const ProtocolVersion uint32 = 103

// ProtocolMajor returns the major part of a protocol version.
func ProtocolMajor(v uint32) uint32 { return v / 100 }

// ALPN protocol ids: the agent session (mutual TLS) and enrolment (server TLS only).
const (
	ALPNSession = "hostplane-agent/1"
	ALPNEnrol   = "hostplane-enrol/1"
)

// QUIC application error codes a coordinator closes an agent connection with.
const (
	CloseOK           uint64 = 0
	CloseRefused      uint64 = 0x10 // node removed or unknown, or its certificate is not current: do not retry
	CloseNotLeader    uint64 = 0x11 // find the leader and reconnect
	CloseProtocol     uint64 = 0x12
	CloseReplaced     uint64 = 0x13 // the node opened a newer session
	CloseShuttingDown uint64 = 0x14
	CloseRetry        uint64 = 0x15 // a transient failure on the leader: retry after back-off
)
