package fsm

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
	bolt "go.etcd.io/bbolt"
)

func nodeBucketDump(t *testing.T, f *FSM) []byte { return bucketDump(f, store.NodeBuckets...) }

// bucketDump is every key and value of the buckets, in order (to compare replicas).
func bucketDump(f *FSM, buckets ...[]byte) []byte {
	var out bytes.Buffer
	_ = f.View(func(tx *bolt.Tx) error {
		for _, b := range buckets {
			_ = tx.Bucket(b).ForEach(func(k, v []byte) error {
				out.Write(k)
				out.Write(v)
				return nil
			})
		}
		return nil
	})
	return out.Bytes()
}

func TestNodeCommands(t *testing.T) {
	h := newWHHarness(t, 2)
	tok := NodeTokenCreate{ID: "jt_1", Hash: "h1", ExpiresAt: h.at.Add(time.Hour)}
	if _, err := h.apply(CmdNodeTokenCreate, tok); !errors.Is(err, ErrInvalid) {
		t.Fatalf("token before the CA: %v", err)
	}
	h.must(CmdNodeCAInit, NodeCAInit{CertDER: []byte{1}, SealedKey: "v1.x", Fingerprint: "fp"})
	if _, err := h.apply(CmdNodeCAInit, NodeCAInit{CertDER: []byte{2}, SealedKey: "v1.y", Fingerprint: "fp2"}); !errors.Is(err, ErrConflict) {
		t.Fatalf("second CA: %v", err)
	}
	h.must(CmdNodeTokenCreate, tok)
	h.must(CmdNodeTokenCreate, NodeTokenCreate{ID: "jt_short", Hash: "h2", ExpiresAt: h.at.Add(2 * time.Second)})

	enrol := NodeEnrol{TokenID: "jt_1", TokenHash: "h1", NodeID: "hv-1", CertSerial: "s1", CertNotAfter: h.at.Add(24 * time.Hour), CertDER: []byte{9}, KeyHash: "k1"}
	if _, err := h.apply(CmdNodeEnrol, NodeEnrol{TokenID: "jt_1", TokenHash: "wrong", NodeID: "hv-1", CertSerial: "s1"}); !errors.Is(err, ErrTokenRefused) {
		t.Fatalf("wrong hash: %v", err)
	}
	n := h.must(CmdNodeEnrol, enrol).(api.AgentNode)
	if n.State != api.AgentNodeEnrolled {
		t.Fatalf("enrolled %+v", n)
	}
	if _, err := h.apply(CmdNodeEnrol, NodeEnrol{TokenID: "jt_1", TokenHash: "h1", NodeID: "hv-2", CertSerial: "s2"}); !errors.Is(err, ErrTokenRefused) {
		t.Fatalf("token used twice: %v", err)
	}
	// A retried enrolment (same token, node and key) is recognised; anything else is not.
	_ = h.fsms[0].View(func(tx *bolt.Tx) error {
		if n, ok := EnrolledWith(store.Read(tx), "jt_1", "h1", "hv-1", "k1"); !ok || string(n.CertDER) != "\x09" {
			t.Errorf("retry not recognised: %v %+v", ok, n)
		}
		for _, c := range [][4]string{{"jt_1", "h1", "hv-1", "k2"}, {"jt_1", "bad", "hv-1", "k1"}, {"jt_1", "h1", "hv-2", "k1"}} {
			if _, ok := EnrolledWith(store.Read(tx), c[0], c[1], c[2], c[3]); ok {
				t.Errorf("EnrolledWith%v accepted", c)
			}
		}
		return nil
	})
	// Expired: the command's own time decides (the harness adds 1 s per command).
	h.at = h.at.Add(5 * time.Second)
	if _, err := h.apply(CmdNodeEnrol, NodeEnrol{TokenID: "jt_short", TokenHash: "h2", NodeID: "hv-3", CertSerial: "s3"}); !errors.Is(err, ErrTokenRefused) {
		t.Fatalf("expired token: %v", err)
	}

	hello := NodeHello{NodeID: "hv-1", CertSerial: "s1", Roles: []string{"kvm"}, Capacity: api.AgentNodeCapacity{VCPUs: 4}, ProtocolVersion: 101}
	if _, err := h.apply(CmdNodeHello, NodeHello{NodeID: "hv-1", CertSerial: "other"}); !errors.Is(err, ErrConflict) {
		t.Fatalf("hello with a foreign serial: %v", err)
	}
	n = h.must(CmdNodeHello, hello).(api.AgentNode)
	if n.State != api.AgentNodeReady || n.Transitions != 1 || n.Capacity.VCPUs != 4 || n.Bridges != nil {
		t.Fatalf("after hello %+v", n)
	}
	// Protocol 1.3: the node's bridges are stored on its record; a bad name
	// is refused and changes nothing.
	before13 := nodeBucketDump(t, h.fsms[0])
	if _, err := h.apply(CmdNodeHello, NodeHello{NodeID: "hv-1", CertSerial: "s1", Roles: []string{"kvm"}, Bridges: []string{"br0", "br0'/>"}}); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "bridge") {
		t.Fatalf("bad bridge name: %v", err)
	}
	if !bytes.Equal(before13, nodeBucketDump(t, h.fsms[0])) {
		t.Fatal("a refused hello changed the record")
	}
	hello13 := hello
	hello13.Bridges, hello13.ProtocolVersion = []string{"br-public", "br-private"}, 103
	if n = h.must(CmdNodeHello, hello13).(api.AgentNode); !slices.Equal(n.Bridges, hello13.Bridges) {
		t.Fatalf("bridges after a 1.3 hello %+v", n)
	}
	if n = h.must(CmdNodeHello, hello).(api.AgentNode); n.Bridges != nil {
		t.Fatalf("a hello without bridges kept %v", n.Bridges)
	}
	if _, err := h.apply(CmdNodeState, NodeStates{Changes: []NodeState{{NodeID: "hv-1", State: api.AgentNodeUnreachable}, {NodeID: "nope", State: api.AgentNodeUnreachable}}}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("state batch with an unknown node: %v", err)
	}
	if _, err := h.apply(CmdNodeState, NodeStates{Changes: []NodeState{{NodeID: "hv-1", State: "sleeping"}}}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad state: %v", err)
	}
	ns := h.must(CmdNodeState, NodeStates{Changes: []NodeState{{NodeID: "hv-1", State: api.AgentNodeUnreachable, LastSeenAt: h.at}}}).([]api.AgentNode)
	if len(ns) != 1 || ns[0].State != api.AgentNodeUnreachable || ns[0].Transitions != 2 {
		t.Fatalf("after unreachable %+v", ns)
	}
	// The same state again writes nothing.
	before := nodeBucketDump(t, h.fsms[0])
	h.must(CmdNodeState, NodeStates{Changes: []NodeState{{NodeID: "hv-1", State: api.AgentNodeUnreachable, LastSeenAt: h.at}}})
	if !bytes.Equal(before, nodeBucketDump(t, h.fsms[0])) {
		t.Fatal("a repeated state changed the record")
	}

	// Renewal keeps the previous serial until it expires.
	h.must(CmdNodeCertRenew, NodeCertRenew{NodeID: "hv-1", OldSerial: "s1", CertSerial: "s1b", CertNotAfter: h.at.Add(48 * time.Hour)})
	if _, err := h.apply(CmdNodeCertRenew, NodeCertRenew{NodeID: "hv-1", OldSerial: "bogus", CertSerial: "x"}); !errors.Is(err, ErrConflict) {
		t.Fatalf("renew from a foreign serial: %v", err)
	}
	var stored store.AgentNode
	_ = h.fsms[0].View(func(tx *bolt.Tx) (err error) { stored, err = store.Read(tx).AgentNode("hv-1"); return })
	if !CertAccepted(stored, "s1", h.at) || !CertAccepted(stored, "s1b", h.at) || CertAccepted(stored, "s1", h.at.Add(25*time.Hour)) {
		t.Fatalf("accepted serials wrong: %+v", stored)
	}

	h.must(CmdNodeRemove, NodeRemove{NodeID: "hv-1"})
	_ = h.fsms[0].View(func(tx *bolt.Tx) (err error) { stored, err = store.Read(tx).AgentNode("hv-1"); return })
	if CertAccepted(stored, "s1b", h.at) || stored.State != api.AgentNodeRemoved {
		t.Fatalf("removed node still accepted: %+v", stored)
	}
	if _, err := h.apply(CmdNodeHello, hello); !errors.Is(err, ErrConflict) {
		t.Fatalf("hello after remove: %v", err)
	}
	h.must(CmdNodeSessionAddr, NodeSessionAddr{CoordinatorID: "n1", Addr: "127.0.0.1:1"})

	if !bytes.Equal(nodeBucketDump(t, h.fsms[0]), nodeBucketDump(t, h.fsms[1])) {
		t.Fatal("replicas differ")
	}
}

// TestKEKMark: the first recorded KEK fingerprint wins on every replica; the
// same one again is a no-op, another one a conflict that changes nothing, and
// a malformed one is refused.
func TestKEKMark(t *testing.T) {
	h := newWHHarness(t, 2)
	fp := strings.Repeat("ab", 16)
	for _, bad := range []KEKMarkSet{{Fingerprint: "", By: "c1"}, {Fingerprint: strings.Repeat("AB", 16), By: "c1"}, {Fingerprint: fp[:30], By: "c1"}, {Fingerprint: fp}} {
		if _, err := h.apply(CmdKEKMark, bad); !errors.Is(err, ErrInvalid) {
			t.Fatalf("%+v: %v, want ErrInvalid", bad, err)
		}
	}
	h.must(CmdKEKMark, KEKMarkSet{Fingerprint: fp, By: "c1"})
	h.must(CmdKEKMark, KEKMarkSet{Fingerprint: fp, By: "c2"})
	if _, err := h.apply(CmdKEKMark, KEKMarkSet{Fingerprint: strings.Repeat("cd", 16), By: "c3"}); !errors.Is(err, ErrConflict) {
		t.Fatalf("another fingerprint: %v, want ErrConflict", err)
	}
	for i, f := range h.fsms {
		_ = f.View(func(tx *bolt.Tx) error {
			m, err := store.Read(tx).KEKMark()
			if err != nil || m.Fingerprint != fp || m.RecordedBy != "c1" {
				t.Errorf("replica %d: mark %+v, %v; want %s recorded by c1", i, m, err, fp)
			}
			return nil
		})
	}
	if !bytes.Equal(nodeBucketDump(t, h.fsms[0]), nodeBucketDump(t, h.fsms[1])) {
		t.Fatal("replicas differ")
	}
}
