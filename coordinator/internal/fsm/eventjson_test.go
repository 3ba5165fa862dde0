package fsm

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/internal/plainjson/codectest"
)

// eventOf is an outbox event as emit makes it: data through json.Marshal.
func eventOf(t testing.TB, id, typ, acct string, at time.Time, data any) store.Event {
	raw, err := json.Marshal(data)
	if err != nil {
		t.Fatal(err)
	}
	return store.Event{ID: id, Type: typ, AccountID: acct, CreatedAt: at, Data: raw}
}

// checkEncoding: whenever encode (named name) writes v, it writes
// json.Marshal's bytes; fast is whether it wrote v at all.
func checkEncoding[T any](t testing.TB, name string, encode func(*T) ([]byte, bool), v T) (fast bool) {
	t.Helper()
	return codectest.Encoding(t, name, encode, v)
}

// checkEventEncoding: whenever encodeEvent writes an event, it writes
// json.Marshal's bytes.
func checkEventEncoding(t testing.TB, ev store.Event) (fast bool) {
	return checkEncoding(t, "encodeEvent", encodeEvent, ev)
}

func TestEventEncodingMatchesEncodingJSON(t *testing.T) {
	at := time.Date(2026, 12, 1, 17, 4, 5, 123456000, time.UTC)
	data := struct {
		TicketID string `json:"ticketId"`
		Subject  string `json:"subject"`
		N        int64  `json:"n"`
	}{"tkt_1", `<b>"quoted" & more</b> ünïcode`, 7}
	codectest.Paths(t, "event", func(ev store.Event) bool { return checkEventEncoding(t, ev) },
		[]store.Event{ // plain
			eventOf(t, "evt_01", "ticket.created", "acc_1", at, data),
			eventOf(t, "evt_02", "ticket.created", "acc_1", at.Truncate(time.Second), nil),
			eventOf(t, "evt_03", "server.created", "acc_2", time.Unix(0, 0).UTC(), map[string]any{"b": 1, "a": []int{1}}),
		},
		[]store.Event{ // outside the plain subset
			eventOf(t, "evt_<1>", "ticket.created", "acc_1", at, data), // HTML-escaped by json.Marshal
			eventOf(t, "evt_1", "ticket.created", "acc_ü", at, data),   // not ASCII
			eventOf(t, "evt_1", "ticket.created", "acc_1", at.In(time.FixedZone("x", 3600)), data),
			eventOf(t, "evt_1", "ticket.created", "acc_1", time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), data),
		})
}

func FuzzEventEncoding(f *testing.F) {
	f.Add("evt_01", "ticket.created", "acc_1", int64(1764608645123456000), "subject", int64(3))
	f.Add("e\"v", "t<", "a&", int64(-62135596800000000), "\u2028\xff", int64(-1))
	f.Fuzz(func(t *testing.T, id, typ, acct string, nanos int64, s string, n int64) {
		ev := eventOf(t, id, typ, acct, time.Unix(0, nanos).UTC(), map[string]any{"s": s, "n": n})
		checkEventEncoding(t, ev)
		ev.CreatedAt = time.Unix(nanos/7, nanos%1000).UTC()
		checkEventEncoding(t, ev)
	})
}
