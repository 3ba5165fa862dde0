package store

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hostplane/hostplane/internal/plainjson/codectest"
	bolt "go.etcd.io/bbolt"
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
			{ReqHash: "h", Status: 201, ExpiresAt: at, BodyRef: "0000000000000c350003"},
			{ReqHash: "<x>", Status: 200, Body: []byte("{}"), ExpiresAt: at, BodyRef: "<\u2028\xff>", Ticket: &IdemTicket{ID: "tkt_1", UpdatedAt: at}},
		},
		[]IdemRecord{ // times outside the fast path's
			{ExpiresAt: at.In(time.FixedZone("x", 3600))},
			{ExpiresAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
			{ExpiresAt: at, Ticket: &IdemTicket{UpdatedAt: time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)}},
			{ExpiresAt: at, Ticket: &IdemTicket{UpdatedAt: at.Local()}},
		})
}

// FuzzIdemRecordEncoding: whatever EncodeIdemRecord writes is json.Marshal's bytes.
func FuzzIdemRecordEncoding(f *testing.F) {
	f.Add("h", 201, []byte(`{"a":1}`), int64(0), int64(0), false, "tkt_1", "acc_1", 2, "open", "")
	f.Add("<\xff>", -7, []byte(nil), int64(-62167219200), int64(999999999), true, "\u2028", "", -1, "\x01", "0000000000000c350003")
	f.Fuzz(func(t *testing.T, hash string, status int, body []byte, sec, nsec int64, ticket bool, id, owner string, msgs int, st, ref string) {
		at := time.Unix(sec, nsec).UTC()
		rec := IdemRecord{ReqHash: hash, Status: status, Body: body, ExpiresAt: at, BodyRef: ref}
		if ticket {
			rec.Ticket = &IdemTicket{ID: id, Owner: owner, Messages: msgs, Status: st, UpdatedAt: at.Add(time.Duration(nsec))}
		}
		codectest.Encoding(t, "EncodeIdemRecord", EncodeIdemRecord, rec)
	})
}

// TestIdemBodyKept: a body put apart is read back, byte for byte, through
// the BodyRef PutIdemBody returns, in key order of the log (index, then the
// command's place); deleted, it reads as not found; a BodyRef that names no
// key is refused, never read as another record's.
func TestIdemBodyKept(t *testing.T) {
	db := testDB(t, func(*bolt.Tx) error { return nil })
	var refs []string
	if err := db.Update(func(tx *bolt.Tx) error {
		for _, at := range []struct {
			index uint64
			n     uint16
		}{{300, 1}, {7, 0}, {300, 0}, {1 << 40, 65535}} {
			ref, err := PutIdemBody(tx, at.index, at.n, []byte(fmt.Sprintf(`{"at":[%d,%d]}`, at.index, at.n)))
			if err != nil {
				return err
			}
			refs = append(refs, ref)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if refs[0] != "000000000000012c0001" {
		t.Fatalf("BodyRef of index 300, command 1: %q", refs[0])
	}
	_ = db.View(func(tx *bolt.Tx) error {
		var keys []string
		_ = tx.Bucket(BucketIdemBodies).ForEach(func(k, _ []byte) error { keys = append(keys, fmt.Sprintf("%x", k)); return nil })
		if want := []string{refs[1], refs[2], refs[0], refs[3]}; !slices.Equal(keys, want) {
			t.Fatalf("keys %v, want the log's order %v", keys, want)
		}
		body, err := Read(tx).IdemBody(refs[3])
		if err != nil || string(body) != `{"at":[1099511627776,65535]}` {
			t.Fatalf("IdemBody(%s): %q, %v", refs[3], body, err)
		}
		for _, bad := range []string{"", "xyz", "000000000000012c00", "000000000000012c000100", "000000000000012c0002"} {
			if b, err := Read(tx).IdemBody(bad); err == nil {
				t.Fatalf("IdemBody(%q) = %q, want an error", bad, b)
			}
		}
		return nil
	})
	if err := db.Update(func(tx *bolt.Tx) error {
		if err := DeleteIdemBody(tx, ""); err != nil {
			return err
		}
		if err := DeleteIdemBody(tx, "nothex"); err == nil {
			t.Error("DeleteIdemBody of a bad ref: no error")
		}
		return DeleteIdemBody(tx, refs[0])
	}); err != nil {
		t.Fatal(err)
	}
	_ = db.View(func(tx *bolt.Tx) error {
		if _, err := Read(tx).IdemBody(refs[0]); !errors.Is(err, ErrNotFound) {
			t.Fatalf("a deleted body: %v, want ErrNotFound", err)
		}
		return nil
	})
}
