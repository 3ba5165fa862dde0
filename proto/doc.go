// Package hostplanepb is the wire contract between coordinators and agents: the
// protobuf messages (generated from hostplane.proto), the protocol version, the
// frame format on QUIC streams and the join-token format.
package hostplanepb

//go:generate ./generate.sh .

// ProtocolVersion is major*100 + minor. Peers of the same major interoperate;
// a minor bump only adds fields or message types, or behaviour both ends
// of a session opt into by the version the other announced (Hello,
// HelloAck).
//
// 1.4 (ProtocolActionBatch): a coordinator of 1.4 ends its side of every
// stream it opens on a 1.4 agent's session right after its request(s), and
// may send several ActionAssign frames (distinct Seq) on one such stream;
// the agent serves each as it would serve a stream of its own (its frames
// answer with ReplyTo = the assign's Seq, under the stream's one context)
// and ends its side once all are answered and the coordinator's side has
// ended. With an older peer on either end, one request per stream, as
// before.
//
// 1.5 (ProtocolConsoleSealed): a coordinator of 1.5 tells a 1.5 agent the
// console sealing key in its HelloAck (console_seal_key) and gives it "hpc2"
// browser console tokens, whose claims (node, server, VM) are sealed with
// that key; an older agent is told no sealing key and gets "hpc1" tokens, as
// an older coordinator gives every agent. A 1.5 agent accepts both.
//
// 1.6 (ProtocolHostingUsage): the leader asks a 1.6 agent of a hosting node
// for its accounts' disk usage (HostingUsageRequest → HostingUsageReport);
// an older agent is not asked (it would answer "unsupported").
const ProtocolVersion uint32 = 106

// ProtocolActionBatch is the first version whose peers may carry several
// actions on one stream (see ProtocolVersion).
const ProtocolActionBatch uint32 = 104

// ProtocolConsoleSealed is the first version whose agents are told the
// console sealing key and given sealed (hpc2) console tokens.
const ProtocolConsoleSealed uint32 = 105

// ProtocolHostingUsage is the first version whose agents answer a
// HostingUsageRequest.
const ProtocolHostingUsage uint32 = 106

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
