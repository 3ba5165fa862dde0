package hostplanepb

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// TestGeneratedCodeIsFresh regenerates hostplane.pb.go into a temporary
// directory and fails when the committed file differs.
func TestGeneratedCodeIsFresh(t *testing.T) {
	bin, _ := filepath.Abs("../.bin")
	path := bin + string(os.PathListSeparator) + os.Getenv("PATH")
	for _, tool := range []string{"protoc", "protoc-gen-go"} {
		if _, err := lookPath(tool, path); err != nil {
			t.Fatalf("%s is not installed; run scripts/install-protoc.sh (Debian package protobuf-compiler and protoc-gen-go@v1.36.12 into .bin/)", tool)
		}
	}
	out := t.TempDir()
	cmd := exec.Command("./generate.sh", out)
	cmd.Env = append(os.Environ(), "PATH="+path)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("generate: %v\n%s", err, msg)
	}
	fresh, err := os.ReadFile(filepath.Join(out, "hostplane.pb.go"))
	if err != nil {
		t.Fatal(err)
	}
	committed, err := os.ReadFile("hostplane.pb.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fresh, committed) {
		t.Fatal("proto/hostplane.pb.go is stale: run `make generate` (or `go generate ./proto`) and commit the result")
	}
}

func lookPath(name, path string) (string, error) {
	for _, dir := range filepath.SplitList(path) {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return exec.LookPath(name)
}

// helloV10 encodes an Envelope{seq: 7, hello} exactly as a protocol 1.0 agent does:
// 1.0 had Hello fields 1-5 only (no hostname).
func helloV10() []byte {
	var capb []byte
	capb = protowire.AppendTag(capb, 1, protowire.VarintType)
	capb = protowire.AppendVarint(capb, 8)
	capb = protowire.AppendTag(capb, 2, protowire.VarintType)
	capb = protowire.AppendVarint(capb, 16<<30)
	capb = protowire.AppendTag(capb, 3, protowire.VarintType)
	capb = protowire.AppendVarint(capb, 500<<30)
	var h []byte
	h = protowire.AppendTag(h, 1, protowire.BytesType)
	h = protowire.AppendString(h, "hv-01")
	h = protowire.AppendTag(h, 2, protowire.VarintType)
	h = protowire.AppendVarint(h, 100)
	h = protowire.AppendTag(h, 3, protowire.BytesType)
	h = protowire.AppendString(h, "kvm")
	h = protowire.AppendTag(h, 4, protowire.BytesType)
	h = protowire.AppendBytes(h, capb)
	h = protowire.AppendTag(h, 5, protowire.BytesType)
	h = protowire.AppendString(h, "0.9.0")
	var env []byte
	env = protowire.AppendTag(env, 1, protowire.VarintType)
	env = protowire.AppendVarint(env, 7)
	env = protowire.AppendTag(env, 10, protowire.BytesType)
	env = protowire.AppendBytes(env, h)
	return env
}

// TestOlderAgentStillDecodes: a Hello from a protocol 1.0 agent (committed
// fixture) decodes with every field it had, the newer field empty, and is
// accepted by the major-version rule.
func TestOlderAgentStillDecodes(t *testing.T) {
	fixture, err := os.ReadFile("testdata/hello_v1.0.hex")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := hex.DecodeString(strings.TrimSpace(string(fixture)))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(raw, helloV10()) {
		t.Fatal("fixture testdata/hello_v1.0.hex does not match the 1.0 encoding built in the test")
	}
	env, err := DecodeEnvelope(raw)
	if err != nil {
		t.Fatal(err)
	}
	h := env.GetHello()
	if h == nil || env.Seq != 7 {
		t.Fatalf("envelope = %v", env)
	}
	if h.NodeId != "hv-01" || h.ProtocolVersion != 100 || len(h.Roles) != 1 || h.Roles[0] != "kvm" ||
		h.Capacity.GetVcpus() != 8 || h.Capacity.GetMemoryBytes() != 16<<30 || h.Capacity.GetDiskBytes() != 500<<30 || h.SoftwareVersion != "0.9.0" {
		t.Fatalf("hello = %v", h)
	}
	if h.Hostname != "" {
		t.Fatalf("hostname (added in 1.1) = %q, want empty", h.Hostname)
	}
	if ProtocolMajor(h.ProtocolVersion) != ProtocolMajor(ProtocolVersion) {
		t.Fatal("a 1.0 agent must be of the same major version as this coordinator")
	}
	// And the 1.1 coordinator's answer decodes under the 1.0 schema rules: a 1.0
	// peer sees HelloAck fields 1-7, which all exist there.
	ack, _ := proto.Marshal(&Envelope{ReplyTo: 7, Body: &Envelope_HelloAck{HelloAck: &HelloAck{Accepted: true, PingIntervalMs: 1000}}})
	if _, err := DecodeEnvelope(ack); err != nil {
		t.Fatal(err)
	}
}

// TestNewerPeerFieldsKept: fields and message types from a newer peer are
// ignored by the logic and preserved when the message is re-encoded.
func TestNewerPeerFieldsKept(t *testing.T) {
	h, _ := proto.Marshal(&Hello{NodeId: "hv-02", ProtocolVersion: 102})
	h = protowire.AppendTag(h, 99, protowire.BytesType)
	h = protowire.AppendString(h, "from the future")
	var env []byte
	env = protowire.AppendTag(env, 10, protowire.BytesType)
	env = protowire.AppendBytes(env, h)
	got, err := DecodeEnvelope(env)
	if err != nil {
		t.Fatal(err)
	}
	if got.GetHello().GetNodeId() != "hv-02" {
		t.Fatalf("hello = %v", got.GetHello())
	}
	again, _ := proto.Marshal(got)
	if !bytes.Contains(again, []byte("from the future")) {
		t.Fatal("unknown field was dropped on re-encode")
	}
	// A message type this version does not know: an envelope with no body.
	var future []byte
	future = protowire.AppendTag(future, 1, protowire.VarintType)
	future = protowire.AppendVarint(future, 3)
	future = protowire.AppendTag(future, 60, protowire.BytesType)
	future = protowire.AppendBytes(future, []byte{0x08, 0x01})
	fe, err := DecodeEnvelope(future)
	if err != nil {
		t.Fatal(err)
	}
	if fe.Body != nil || fe.Seq != 3 {
		t.Fatalf("future envelope = %v", fe)
	}
}

func TestFrameRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	in := &Envelope{Seq: 1, Body: &Envelope_Ping{Ping: &Ping{SentUnixMs: 42}}}
	if err := WriteEnvelope(&buf, in); err != nil {
		t.Fatal(err)
	}
	out, err := ReadEnvelope(&buf, 0)
	if err != nil || out.GetPing().GetSentUnixMs() != 42 {
		t.Fatalf("got %v, %v", out, err)
	}
	// A header claiming more than the limit is refused before allocating.
	if _, err := ReadEnvelope(bytes.NewReader([]byte{0xff, 0xff, 0xff, 0xff}), 1024); err == nil {
		t.Fatal("oversized frame accepted")
	}
}

// TestFramesAreLengthAndMarshal: WriteEnvelope and Frames write a frame as
// its 4-byte big-endian length and proto.Marshal's bytes (an action with
// params and a secret, a ping, an empty envelope), Frames one after the
// other; a frame over MaxFrame is refused by both (nothing written).
func TestFramesAreLengthAndMarshal(t *testing.T) {
	envs := []*Envelope{
		{Seq: 7, Body: &Envelope_ActionAssign{ActionAssign: &ActionAssign{ActionId: "act_01", Command: "server.provision", Target: "vm-1",
			Params: []byte(`{"template":"base"}`), SecretParams: []byte(`{"root_password":"x"}`), DeadlineUnixMs: 1 << 40, Resend: true}}},
		{Seq: 1, Body: &Envelope_Ping{Ping: &Ping{SentUnixMs: 42}}},
		{},
	}
	var want []byte
	for _, env := range envs {
		b, err := proto.Marshal(env)
		if err != nil {
			t.Fatal(err)
		}
		frame := binary.BigEndian.AppendUint32(nil, uint32(len(b)))
		frame = append(frame, b...)
		var w bytes.Buffer
		if err := WriteEnvelope(&w, env); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(w.Bytes(), frame) {
			t.Errorf("WriteEnvelope(%v) = %x, want %x", env, w.Bytes(), frame)
		}
		want = append(want, frame...)
	}
	if frames, err := Frames(envs); err != nil || !bytes.Equal(frames, want) {
		t.Errorf("Frames wrote %x, %v; want %x", frames, err, want)
	}
	huge := &Envelope{Body: &Envelope_ActionAssign{ActionAssign: &ActionAssign{Params: make([]byte, MaxFrame)}}}
	var w bytes.Buffer
	if err := WriteEnvelope(&w, huge); !errors.Is(err, ErrFrameTooLarge) || w.Len() != 0 {
		t.Errorf("WriteEnvelope of a frame over MaxFrame: %v, %d bytes written", err, w.Len())
	}
	if _, err := Frames([]*Envelope{envs[0], huge}); !errors.Is(err, ErrFrameTooLarge) {
		t.Errorf("Frames with a frame over MaxFrame: %v", err)
	}
}

func TestJoinToken(t *testing.T) {
	tok := JoinToken{ID: "jt_0123456789", Secret: "abcdefghijklmnopqrstuvwxyz012345", CAFingerprint: CAFingerprint([]byte("ca"))}
	got, err := ParseJoinToken(tok.String())
	if err != nil || got != tok {
		t.Fatalf("round trip: %v %v", got, err)
	}
	for _, bad := range []string{"", "hpj1", "hpj1.a.b.c", "hpj2." + tok.ID + "." + tok.Secret + "." + tok.CAFingerprint, tok.String() + ".x", "hpj1.jt_0123456789.short." + tok.CAFingerprint} {
		if _, err := ParseJoinToken(bad); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func FuzzDecodeEnvelope(f *testing.F) {
	f.Add(helloV10())
	b, _ := proto.Marshal(&Envelope{Body: &Envelope_EnrolRequest{EnrolRequest: &EnrolRequest{Token: "x", CsrDer: []byte{1, 2}}}})
	f.Add(b)
	f.Add([]byte{0x0a, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		env, err := DecodeEnvelope(data)
		if err != nil {
			return
		}
		// Whatever decodes re-encodes and decodes to the same message.
		again, err := proto.Marshal(env)
		if err != nil {
			t.Fatal(err)
		}
		env2, err := DecodeEnvelope(again)
		if err != nil || !proto.Equal(env, env2) {
			t.Fatalf("re-decode differs: %v", err)
		}
		var buf bytes.Buffer
		if err := WriteEnvelope(&buf, env); err == nil {
			if _, err := ReadEnvelope(&buf, 0); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// BenchmarkFrames8 is the frames of 8 provisioning actions sent on one
// stream (session CallEach): written with WriteEnvelope into a buffer, and
// made by Frames (what CallEach does).
func BenchmarkFrames8(b *testing.B) {
	reqs := make([]*Envelope, 8)
	for i := range reqs {
		reqs[i] = &Envelope{Seq: uint64(i + 1), Body: &Envelope_ActionAssign{ActionAssign: &ActionAssign{
			ActionId: "act_01kt3j5v0x9q8m2a7b6c5d4e3f", Command: "server.provision", Target: "srv-01kt3j5v0x9q8m2a7b6c5d4e3f",
			Params:         []byte(`{"name":"srv-01kt3j5v0x9q8m2a7b6c5d4e3f","template":"debian-12","plan":{"vcpus":1,"memory_mib":256,"disk_gib":10},"hostname":"bench-1.example.com","ipv4":"10.0.0.17/16","gateway4":"10.0.0.1","mac":"52:54:00:12:34:56","network":"default"}`),
			SecretParams:   []byte(`{"root_password":"aZ09aZ09aZ09aZ09aZ09"}`),
			DeadlineUnixMs: 1796000000000}}}
	}
	b.Run("WriteEnvelope", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var buf bytes.Buffer
			for _, r := range reqs {
				if err := WriteEnvelope(&buf, r); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("Frames", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Frames(reqs); err != nil {
				b.Fatal(err)
			}
		}
	})
}
