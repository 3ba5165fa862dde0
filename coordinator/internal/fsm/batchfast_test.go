package fsm

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
)

// batchSamples are group commits as the batcher writes them, and variations
// the layout reader must leave to encoding/json.
func batchSamples() [][]byte {
	a, _ := NewEnvelope(CmdTicketCreate, t0, TicketCreate{ID: "tkt_1", Subject: `quo"te {[,]} \ é`})
	a.Idem = &IdemRequest{Scope: `k/1"}`, ReqHash: "h", Status: 201, ExpiresAt: t0}
	b, _ := NewEnvelope(CmdWalletCredit, t0.Add(time.Second), WalletCredit{TxID: "wtx_1", AccountID: "acc_1", AmountUsdCents: 5})
	c, _ := NewEnvelope(CmdTicketCreate, time.Date(2026, 3, 4, 5, 6, 7, 891011, time.FixedZone("x", 3600)), []int{1, 2})
	ea, _ := a.Encode()
	eb, _ := b.Encode()
	ec, _ := c.Encode()
	return [][]byte{
		EncodeBatch(t0, [][]byte{ea, eb}), EncodeBatch(t0, [][]byte{eb, ec, ea}),
		EncodeBatch(t0, [][]byte{ea, []byte("null"), []byte(`{"t":0}`), []byte(`{"t":14,"d":[]}`)}),
		EncodeBatch(t0, [][]byte{[]byte(`{"t":3,"v":1,"at":"2026-01-01T00:00:00Z","d":12 }`)}),
		EncodeBatch(t0, [][]byte{[]byte(`{"t":3,"v":1,"at":"2026-01-01T00:00:00Z","i":null,"d":"x"}`)}),
		EncodeBatch(t0, [][]byte{[]byte(`{"t":3,"v":1,"at":"2026-01-01T00:00:00Z","i":{"S":"a","h":"b","x":1},"d":[1,{"a":"]"}]}`)}),
		EncodeBatch(t0, [][]byte{[]byte(`{"t":70000,"v":1,"at":"2026-01-01T00:00:00Z","d":{}}`)}),
		EncodeBatch(t0, [][]byte{[]byte(`{"t":3,"v":1,"at":"2026-13-01T00:00:00Z","d":{}}`)}),
		EncodeBatch(t0, [][]byte{[]byte(`{"t":3,"v":1,"at":"2026-01-01T00:00:00Z","d":{"a":}}`)}),
		EncodeBatch(t0, nil), []byte(`{"t":14,"v":1,"d":null}`), []byte(`{"t":14,"v":1,"d":[],"t":8}`), []byte(`{"t":14,"v":1,"d":[5]}`), ea,
	}
}

// TestBatchLayoutReadsTheBatchersEntries: the entries the batcher writes go
// through the layout reader (not silently through encoding/json) and decode
// to what encoding/json gives.
func TestBatchLayoutReadsTheBatchersEntries(t *testing.T) {
	for i, s := range batchSamples()[:2] {
		fast, ok := decodeBatchLayout(s)
		if !ok {
			t.Fatalf("sample %d: the layout reader gave up on %s", i, s)
		}
		slow, ok := decodeBatchJSON(s)
		if !ok || !reflect.DeepEqual(fast, slow) {
			t.Fatalf("sample %d: layout %+v, encoding/json %+v (%v)", i, fast, slow, ok)
		}
		if fast[0].Type != CmdTicketCreate && fast[0].Type != CmdWalletCredit {
			t.Fatalf("sample %d: first command type %d", i, fast[0].Type)
		}
	}
	// A payload followed by whitespace is left to encoding/json, which
	// leaves the whitespace out of it.
	s := batchSamples()[3]
	if _, ok := decodeBatchLayout(s); ok {
		t.Fatalf("the layout reader took %s", s)
	}
	if subs, ok := decodeBatchFast(s); !ok || string(subs[0].Data) != "12" {
		t.Fatalf("decodeBatchFast(%s) = %+v, %v", s, subs, ok)
	}
}

// FuzzDecodeBatchLayout: whatever the layout reader accepts, encoding/json
// decodes to the same commands.
func FuzzDecodeBatchLayout(f *testing.F) {
	for _, s := range batchSamples() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fast, ok := decodeBatchLayout(data)
		if !ok {
			return
		}
		slow, ok := decodeBatchJSON(data)
		if !ok {
			t.Fatalf("layout reader took an entry encoding/json refuses: %q", data)
		}
		if !reflect.DeepEqual(fast, slow) {
			t.Fatalf("layout %+v, encoding/json %+v", fast, slow)
		}
	})
}

// FuzzValidJSON: validJSON says what json.Valid says.
func FuzzValidJSON(f *testing.F) {
	for _, s := range batchSamples() {
		f.Add(s)
	}
	for _, s := range []string{``, ` `, `0`, `-0.5e+3`, `01`, `1.`, `-`, `"\u00e9\n"`, `"\x"`, `"a`, "\"\x01\"", `[1,]`, `{"a" : [true , false,null] }`, `{,}`, `[[[]]]`, `tru`, `nul`, "\"\xff\""} {
		f.Add([]byte(s))
	}
	for _, n := range []int{9999, 10000, 10001} {
		deep := []byte(strings.Repeat("[", n) + "1" + strings.Repeat("]", n))
		if got, want := validJSON(deep), json.Valid(deep); got != want {
			f.Fatalf("validJSON of %d nested arrays = %v, json.Valid %v", n, got, want)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := validJSON(b), json.Valid(b); got != want {
			t.Fatalf("validJSON(%q) = %v, json.Valid %v", b, got, want)
		}
	})
}

// TestEnvelopeEncodingMatchesEncodingJSON: Encode writes what it wrote
// through encoding/json, and takes the plain path for a command the API
// proposes (no idempotency request, UTC time).
func TestEnvelopeEncodingMatchesEncodingJSON(t *testing.T) {
	plain := 0
	for _, at := range []time.Time{t0, t0.Add(123456789), time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC), t0.In(time.FixedZone("x", 3600)), {}} {
		for _, idem := range []*IdemRequest{nil, {Scope: "k/1", ReqHash: "h", Status: 201, ExpiresAt: t0}} {
			for _, data := range []json.RawMessage{nil, json.RawMessage(`{"a":"b"}`)} {
				e := &Envelope{Type: CmdTicketCreate, Version: 1, At: at, Data: data, Idem: idem}
				got, gerr := e.Encode()
				want, werr := e.encodeJSON()
				if string(got) != string(want) || (gerr == nil) != (werr == nil) {
					t.Fatalf("%+v: Encode %s (%v), encoding/json %s (%v)", e, got, gerr, want, werr)
				}
				if _, ok := e.encodePlain(); ok {
					plain++
				}
			}
		}
	}
	if plain != 10 {
		t.Fatalf("%d envelopes took the plain path, want 10", plain)
	}
}

// FuzzEnvelopeEncoding: whatever encodePlain writes is encoding/json's bytes.
func FuzzEnvelopeEncoding(f *testing.F) {
	f.Add(uint16(8), uint8(1), int64(0), int64(0), []byte(`{"a":1}`))
	f.Add(uint16(65535), uint8(255), int64(-62167219200), int64(999999999), []byte(nil))
	f.Fuzz(func(t *testing.T, typ uint16, v uint8, sec, nsec int64, data []byte) {
		if !json.Valid(data) {
			data = nil
		}
		e := &Envelope{Type: CommandType(typ), Version: v, At: time.Unix(sec, nsec).UTC(), Data: data}
		got, ok := e.encodePlain()
		if !ok {
			return
		}
		if want, err := e.encodeJSON(); err != nil || string(got) != string(want) {
			t.Fatalf("plain %s, encoding/json %s (%v)", got, want, err)
		}
	})
}

// TestTicketCreatedMatchesEncodingJSON: a ticket.created event's data is
// json.Marshal's bytes, escapes included.
func TestTicketCreatedMatchesEncodingJSON(t *testing.T) {
	for _, subj := range []string{"plain", `quo"te \ <b>&</b> é \u2028 \x00`, "\u2028\u2029\xff", ""} {
		tk := api.Ticket{ID: "tkt_1", Number: -7, Subject: subj, Status: api.TicketOpen, Priority: "high"}
		want, _ := json.Marshal(ticketCreated{tk.ID, tk.Number, tk.Subject, tk.Status, tk.Priority})
		if got := encodeTicketCreated(&tk); string(got) != string(want) {
			t.Fatalf("subject %q: %s, encoding/json %s", subj, got, want)
		}
	}
}

// FuzzTicketCreatedEncoding: encodeTicketCreated writes json.Marshal's bytes.
func FuzzTicketCreatedEncoding(f *testing.F) {
	f.Add("tkt_1", int64(3), "subject <&>", "open", "low")
	f.Add("\xff", int64(-1), "\u2028\"\\", "", "\x01")
	f.Fuzz(func(t *testing.T, id string, n int64, subj, status, prio string) {
		tk := api.Ticket{ID: id, Number: n, Subject: subj, Status: status, Priority: prio}
		want, err := json.Marshal(ticketCreated{id, n, subj, status, prio})
		if got := encodeTicketCreated(&tk); err != nil || string(got) != string(want) {
			t.Fatalf("%s, encoding/json %s (%v)", got, want, err)
		}
	})
}
