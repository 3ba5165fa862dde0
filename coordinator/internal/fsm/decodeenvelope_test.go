package fsm

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

// singleSamples are entries of one command: the API's server order and
// ticket as the cluster benchmark sends them (an Idempotency-Key each), a
// command without one, and forms the layout reader must leave to
// encoding/json.
func singleSamples(t testing.TB) [][]byte {
	s := newApplyOrderStateOf(t, 0, false, MaxLevel)
	s.oneCustomer = true
	var out [][]byte
	for _, kind := range []string{"order", "ticket"} {
		raw, err := s.next(kind).Encode()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, raw)
	}
	plain, _ := NewEnvelope(CmdWalletCredit, t0, WalletCredit{TxID: "wtx_1", AccountID: "acc_1", AmountUsdCents: 5})
	raw, _ := plain.Encode()
	out = append(out, raw)
	for _, s := range batchSamples() {
		if !bytes.HasPrefix(s, batchPrefix) {
			out = append(out, s)
		}
	}
	for _, s := range []string{
		`{"t":3,"v":1,"at":"2026-01-01T00:00:00Z","i":null,"d":null}`,
		`{"t":3,"v":1,"at":"2026-01-01T00:00:00Z","d":12 }`,
		`{"t":3,"v":1,"at":"2026-01-01T00:00:00Z","d":{}} `,
		`{"t":0,"v":1,"at":"2026-01-01T00:00:00Z","d":{}}`,
		`{"t":3,"v":1,"at":"2026-01-01T00:00:00+01:00","i":{"s":"k","h":"h","st":201,"exp":"2026-01-02T00:00:00Z"},"d":[1]}`,
		`{"t":3,"v":1,"at":"2026-01-01T00:00:00Z","d":{},"t":4}`,
		`{"T":3,"v":1,"at":"2026-01-01T00:00:00Z","d":{}}`,
		`{"t":14,"v":1,"at":"2026-01-01T00:00:00Z","d":[{"t":3}]}`,
		// Unknown members, duplicate keys, escapes, big or odd numbers:
		// encoding/json's.
		`{"t":3,"v":1,"at":"2026-01-01T00:00:00Z","x":1,"d":{}}`,
		`{"t":3,"v":1,"at":"2026-01-01T00:00:00Z","d":{},"d":[]}`,
		`{"t":3,"v":1,"t":4,"at":"2026-01-01T00:00:00Z","d":{}}`,
		`{"t":3,"v":1,"at":"2026-01-01T00:00:00\u005a","d":{}}`,
		`{"\u0074":3,"v":1,"at":"2026-01-01T00:00:00Z","d":{}}`,
		`{"t":3,"v":1,"at":"2026-01-01T00:00:00Z","i":{"s":"k\"/\u00e9","h":"h","st":201,"exp":"2026-01-02T00:00:00Z","s":"x"},"d":{}}`,
		`{"t":3,"v":1,"at":"2026-01-01T00:00:00Z","i":{"st":1e2},"d":{}}`,
		`{"t":3,"v":1,"at":"2026-01-01T00:00:00Z","d":"\ud800 \"}{\""}`,
		"{\"t\":3,\"v\":1,\"at\":\"2026-01-01T00:00:00Z\",\"d\":\"\xff\"}",
		`{"t":99999999999999999999,"v":1,"at":"2026-01-01T00:00:00Z","d":{}}`,
		`{"t":65535,"v":255,"at":"2026-01-01T00:00:00Z","d":{}}`,
		`{"t":65536,"v":1,"at":"2026-01-01T00:00:00Z","d":{}}`,
		`{"t":3,"v":256,"at":"2026-01-01T00:00:00Z","d":{}}`,
		`{"t":3.0,"v":1,"at":"2026-01-01T00:00:00Z","d":{}}`,
		`{"t":3e0,"v":1,"at":"2026-01-01T00:00:00Z","d":{}}`,
		`{"t":-1,"v":1,"at":"2026-01-01T00:00:00Z","d":{}}`,
		`{"t":03,"v":1,"at":"2026-01-01T00:00:00Z","d":{}}`,
		`{"t":3,"v":1,"at":"2026-01-01T00:00:00Z","d":1e400}`,
		`{"t":3,"v":1,"at":"2026-01-01T00:00:00Z","d":-0.5e+3}`,
		`{"t":3,"v":1,"at":null,"d":{}}`,
		`{"t":3,"v":1,"at":"2026-01-01T00:00:00Z","i":null,"d":{}}`,
		`{"t":3,"v":1,"at":"2026-01-01T00:00:00Z","d":{}`,
		`{"t":3,"v":1,"at":"2026-01-01T00:00:00Z","d":}`,
		`null`, ``, `{}`,
	} {
		out = append(out, []byte(s))
	}
	return out
}

// TestDecodeEnvelopeWithoutReflection: DecodeEnvelope reads the entries
// the leader proposes alone (a command that shared no group commit: on
// every replica) to what encoding/json gives, in fewer allocations than
// encoding/json takes (its reflection over the whole entry), with a
// payload of its own (not the log's buffer).
func TestDecodeEnvelopeWithoutReflection(t *testing.T) {
	for i, raw := range singleSamples(t)[:3] {
		got, err := DecodeEnvelope(raw)
		if err != nil {
			t.Fatalf("sample %d: %v", i, err)
		}
		var want Envelope
		if err := json.Unmarshal(raw, &want); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(*got, want) {
			t.Fatalf("sample %d: DecodeEnvelope %+v, encoding/json %+v", i, *got, want)
		}
		fast := testing.AllocsPerRun(50, func() { _, _ = DecodeEnvelope(raw) })
		slow := testing.AllocsPerRun(50, func() {
			var e Envelope
			_ = json.Unmarshal(raw, &e)
		})
		if fast >= slow {
			t.Errorf("sample %d (%.60s…): DecodeEnvelope allocated %.0f times, encoding/json %.0f: read through encoding/json", i, raw, fast, slow)
		}
		data := string(got.Data)
		mine := bytes.Clone(raw)
		got, _ = DecodeEnvelope(mine)
		clear(mine)
		if string(got.Data) != data {
			t.Fatalf("sample %d: the payload points into the entry's bytes", i)
		}
	}
}

// TestDecodeEnvelopeLeavesTheRestToEncodingJSON: an entry the layout reader
// does not take decodes (or fails) as encoding/json has it; one it takes
// decodes the same.
func TestDecodeEnvelopeLeavesTheRestToEncodingJSON(t *testing.T) {
	for i, raw := range singleSamples(t) {
		got, err := DecodeEnvelope(raw)
		var want Envelope
		werr := json.Unmarshal(raw, &want)
		switch {
		case werr != nil || want.Type == 0:
			if err == nil {
				t.Errorf("sample %d %s: decoded %+v, encoding/json %v (type %d)", i, raw, *got, werr, want.Type)
			}
		case err != nil:
			t.Errorf("sample %d %s: %v, encoding/json decodes it", i, raw, err)
		case !reflect.DeepEqual(*got, want):
			t.Errorf("sample %d %s: DecodeEnvelope %+v, encoding/json %+v", i, raw, *got, want)
		}
	}
}

// FuzzDecodeEnvelopeLayout: whatever the layout reader takes, encoding/json
// takes and decodes to the same envelope.
func FuzzDecodeEnvelopeLayout(f *testing.F) {
	for _, s := range singleSamples(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fast, ok := decodeEnvelopeLayout(data)
		if !ok {
			return
		}
		var slow Envelope
		if err := json.Unmarshal(data, &slow); err != nil {
			t.Fatalf("layout reader took an entry encoding/json refuses (%v): %q", err, data)
		}
		if !reflect.DeepEqual(fast, slow) {
			t.Fatalf("layout %+v, encoding/json %+v", fast, slow)
		}
	})
}
