package store

import (
	"testing"
	"time"

	"github.com/hostplane/hostplane/internal/plainjson/codectest"
)

// TestIdemRecordEncodingMatchesEncodingJSON: EncodeIdemRecord writes
// json.Marshal's bytes (a nil, empty and binary body, escaped strings, a
// ticket reply's record), and gives up on times json.Marshal writes
// otherwise or refuses.
func TestIdemRecordEncodingMatchesEncodingJSON(t *testing.T) {
	at := time.Date(2026, 12, 1, 17, 4, 5, 123456000, time.UTC)
	codectest.Paths(t, "record", func(rec IdemRecord) bool { return codectest.Encoding(t, "EncodeIdemRecord", EncodeIdemRecord, rec) },
		[]IdemRecord{ // UTC times
			{ReqHash: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", Status: 201, Body: []byte(`{"server":{"id":"srv_1"}}`), ExpiresAt: at},
			{ReqHash: "h", Status: 0, Body: nil, ExpiresAt: at.Truncate(time.Second)},
			{ReqHash: "", Status: -1, Body: []byte{}, ExpiresAt: time.Unix(0, 0).UTC()},
			{ReqHash: "<&>\"\\ ü \u2028 \xff", Status: 599, Body: []byte{0, 1, 2, 0xfe, 0xff}, ExpiresAt: at},
			{ReqHash: "h", Status: 201, ExpiresAt: at, Ticket: &IdemTicket{ID: "tkt_1", Owner: "acc_1", Messages: 3, Status: "open", UpdatedAt: at}},
			{ReqHash: "h", Status: 201, ExpiresAt: at, Ticket: &IdemTicket{ID: "<x>", Owner: "\u2029", Status: "\x00", UpdatedAt: at.Add(time.Nanosecond)}},
			{ReqHash: "h", Status: 202, Body: []byte(`{"id":"dom_1"}`), ExpiresAt: at, Decided: true},
			{ReqHash: "h", Status: 201, ExpiresAt: at, Ticket: &IdemTicket{ID: "tkt_1", UpdatedAt: at}, Decided: true},
		},
		[]IdemRecord{ // times outside the fast path's
			{ExpiresAt: at.In(time.FixedZone("x", 3600))},
			{ExpiresAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
			{ExpiresAt: at, Ticket: &IdemTicket{UpdatedAt: time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)}},
			{ExpiresAt: at, Ticket: &IdemTicket{UpdatedAt: at.Local()}},
			{ExpiresAt: at.Local(), Decided: true},
		})
}

// FuzzIdemRecordEncoding: whatever EncodeIdemRecord writes is json.Marshal's bytes.
func FuzzIdemRecordEncoding(f *testing.F) {
	f.Add("h", 201, []byte(`{"a":1}`), int64(0), int64(0), false, "tkt_1", "acc_1", 2, "open")
	f.Add("<\xff>", -7, []byte(nil), int64(-62167219200), int64(999999999), true, "\u2028", "", -1, "\x01")
	f.Fuzz(func(t *testing.T, hash string, status int, body []byte, sec, nsec int64, ticket bool, id, owner string, msgs int, st string) {
		at := time.Unix(sec, nsec).UTC()
		// Decided rides on status's parity: a new argument would void the
		// stored corpus.
		rec := IdemRecord{ReqHash: hash, Status: status, Body: body, ExpiresAt: at, Decided: status%2 == 0}
		if ticket {
			rec.Ticket = &IdemTicket{ID: id, Owner: owner, Messages: msgs, Status: st, UpdatedAt: at.Add(time.Duration(nsec))}
		}
		codectest.Encoding(t, "EncodeIdemRecord", EncodeIdemRecord, rec)
	})
}
