package fsm

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/internal/plainjson/codectest"
	"github.com/hostplane/hostplane/pkg/api"
	bolt "go.etcd.io/bbolt"
)

// checkTicketEncoding: whenever EncodeTicket writes a ticket, it writes
// json.Marshal's bytes.
func checkTicketEncoding(t testing.TB, tk api.Ticket) (fast bool) {
	return checkEncoding(t, "EncodeTicket", EncodeTicket, tk)
}

func TestTicketEncodingMatchesEncodingJSON(t *testing.T) {
	at := time.Date(2026, 12, 1, 17, 4, 5, 123456000, time.UTC)
	msg := func(id, author, staff, body string, at time.Time) api.TicketMessage {
		return api.TicketMessage{ID: id, Author: author, StaffName: staff, Body: body, CreatedAt: at}
	}
	codectest.Paths(t, "ticket", func(tk api.Ticket) bool { return checkTicketEncoding(t, tk) }, []api.Ticket{ // UTC times
		{ID: "tkt_1", Number: 1, Subject: "bench", Status: "open", Priority: "low", Department: "technical", CreatedAt: at, UpdatedAt: at,
			Messages: []api.TicketMessage{msg("msg_1", "customer", "", "benchmark ticket body", at)}},
		{ID: "tkt_2", Number: -9, Subject: "<b>\"quoted\" & \\ \b\f\n\r\t\x01\x7f ünï \u2028\u2029 \xff\xfe</b>", Status: "answered",
			CreatedAt: at.Truncate(time.Second), UpdatedAt: time.Unix(0, 0).UTC(),
			Messages: []api.TicketMessage{msg("msg_1", "customer", "", "a", at), msg("msg_2", "staff", "Ayşe <ops>", "b\x00", at.Add(time.Nanosecond))}},
		{ID: "tkt_3", Subject: "list view", CreatedAt: at, UpdatedAt: at},                                     // no messages: omitted
		{ID: "tkt_4", Subject: "empty thread", CreatedAt: at, UpdatedAt: at, Messages: []api.TicketMessage{}}, // omitted too
	}, []api.Ticket{ // times outside the fast path's
		{ID: "tkt_5", CreatedAt: at.In(time.FixedZone("x", 3600)), UpdatedAt: at},
		{ID: "tkt_6", CreatedAt: at, UpdatedAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
		{ID: "tkt_7", CreatedAt: at, UpdatedAt: at, Messages: []api.TicketMessage{msg("m", "a", "", "b", time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC))}},
	})
}

// A created ticket's stored records (the ticket and its list view) are
// json.Marshal's bytes of what they hold.
func TestStoredTicketIsEncodingJSON(t *testing.T) {
	f := applied(t, filepath.Join(t.TempDir(), "f.db"),
		logOf(t, 1, CmdAccountCreate, AccountCreate{ID: "acc_1", Email: "a@x.io", Name: "a", Country: "TR"}),
		logOf(t, 2, CmdTicketCreate, TicketCreate{ID: "tkt_1", AccountID: "acc_1", MessageID: "msg_1", Subject: `s <&> "ü"`, Message: "m\n", Department: "technical", Priority: "low", PerAccountNumber: true}))
	for _, bucket := range [][]byte{store.BucketTickets, store.BucketTicketList} {
		var raw []byte
		_ = f.View(func(tx *bolt.Tx) error {
			raw = append(raw, tx.Bucket(bucket).Get(store.OwnedKey("acc_1", "tkt_1"))...)
			return nil
		})
		var tk api.Ticket
		if err := json.Unmarshal(raw, &tk); err != nil || tk.Subject != `s <&> "ü"` {
			t.Fatalf("%s: %s (%v)", bucket, raw, err)
		}
		if want, _ := json.Marshal(tk); !bytes.Equal(raw, want) {
			t.Errorf("%s stored\n%s\nwant\n%s", bucket, raw, want)
		}
	}
}

func FuzzTicketEncoding(f *testing.F) {
	f.Add("tkt_1", int64(1), "bench", "open", "benchmark ticket body", "", int64(1764608645123456000), uint8(1))
	f.Add("t\"<", int64(-5), "\xff\u2028&", "x\x00y", "\\\b\f", "staff \t name", int64(-62135596800000000), uint8(3))
	f.Fuzz(func(t *testing.T, id string, number int64, subject, status, body, staff string, nanos int64, msgs uint8) {
		at := time.Unix(0, nanos).UTC()
		tk := api.Ticket{ID: id, Number: number, Subject: subject, Status: status, Priority: body, Department: staff, CreatedAt: at, UpdatedAt: at.Add(time.Duration(number))}
		for i := 0; i < int(msgs%4); i++ {
			tk.Messages = append(tk.Messages, api.TicketMessage{ID: id, Author: status, StaffName: staff[:len(staff)*i%2], Body: body, CreatedAt: time.Unix(nanos/7, int64(i)).UTC()})
		}
		checkTicketEncoding(t, tk)
	})
}

// FuzzReadTicketCreate: whatever readTicketCreate reads, json.Unmarshal reads
// the same; and it reads every payload json.Marshal writes for plain text.
func FuzzReadTicketCreate(f *testing.F) {
	good, _ := json.Marshal(TicketCreate{ID: "tkt_1", AccountID: "acc_1", MessageID: "msg_1", Subject: "bench", Message: "benchmark ticket body", Department: "technical", Priority: "low", PerAccountNumber: true})
	old, _ := json.Marshal(TicketCreate{ID: "tkt_1", Subject: "ünï", Message: "<&>\n"})
	f.Add(good, "bench", "body", true)
	f.Add(old, "Türkçe konu", "satır", false)
	f.Add([]byte(`{"id":"a","account_id":"b","message_id":"c","subject":"\xff","message":"","department":"","priority":"","per_account_number":false}`), "", "\x7f", true)
	f.Fuzz(func(t *testing.T, b []byte, subject, message string, perAccount bool) {
		codectest.Reading(t, "readTicketCreate", readTicketCreate, b)
		in := TicketCreate{ID: "tkt_1", AccountID: "acc_1", MessageID: "msg_1", Subject: subject, Message: message, Department: "technical", Priority: "low", PerAccountNumber: perAccount}
		raw, _ := json.Marshal(in)
		p, ok := readTicketCreate(raw)
		if ok && p != in {
			t.Fatalf("round trip of %+v: %+v", in, p)
		}
		var plain = true
		for _, s := range []string{subject, message} {
			for i := 0; i < len(s); i++ {
				if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
					plain = false
				}
			}
		}
		if plain && !ok {
			t.Fatalf("plain payload %s not read", raw)
		}
	})
}
