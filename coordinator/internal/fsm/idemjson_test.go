package fsm

import (
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/apitest"
	"github.com/hostplane/hostplane/internal/plainjson/codectest"
	"github.com/hostplane/hostplane/pkg/api"
)

// TestIdemAnswerMatchesEncodingJSON: the answer an idempotency record
// keeps is json.Marshal's bytes of the command's result, written without
// reflection for a server order and a ticket (escapes included), and left
// to encoding/json for other results and times outside the fast path.
func TestIdemAnswerMatchesEncodingJSON(t *testing.T) {
	at := time.Date(2026, 12, 1, 17, 4, 5, 123456000, time.UTC)
	order := apitest.PaidServerOrder(at, "1")
	hostile := order
	hostile.Server.Label, hostile.Server.Hostname = "ünï \u2028 \"x\" \xff <b>", ""
	hostile.Invoice.Lines = []api.InvoiceLine{{Description: "<&> \u2029"}}
	ticket := api.Ticket{ID: "tkt_1", Number: 7, Subject: "<b>\"q\" \u2028 \xff</b>", Status: api.TicketOpen, Priority: "low", Department: "technical",
		CreatedAt: at, UpdatedAt: at, Messages: []api.TicketMessage{{ID: "msg_1", Author: "customer", Body: "a\x00b", CreatedAt: at}}}
	late := order
	late.Invoice.DueAt = at.In(time.FixedZone("x", 3600))
	oldTicket := ticket
	oldTicket.UpdatedAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	encode := func(v *any) ([]byte, bool) { return encodeAnswer(*v) }
	// Answers of UTC times are written; answers it does not know are not.
	codectest.Paths(t, "answer", func(v any) bool { return codectest.Encoding(t, "encodeAnswer", encode, v) },
		[]any{order, hostile, ticket}, []any{late, oldTicket, api.AdminServerCreated{}, &order, nil})
}

// FuzzReadIdemRequest: whatever readIdemRequest reads, json.Unmarshal reads
// the same.
func FuzzReadIdemRequest(f *testing.F) {
	f.Add([]byte(`{"s":"key_1/k-1","h":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08","st":201,"exp":"2026-12-02T17:04:05.123456Z"}`))
	f.Add([]byte(`{"s":"k","st":-1}`))
	f.Add([]byte(`{"S":"k","h":"x\u00e9","exp":"2026-12-02T17:04:05+01:00"}`))
	f.Add([]byte(`{"s":"k","s":"j"}`))
	f.Fuzz(func(t *testing.T, b []byte) { codectest.Reading(t, "readIdemRequest", readIdemRequest, b) })
}

// TestReadIdemRequest: the requests the API sends are read without
// reflection; anything else is left to encoding/json.
func TestReadIdemRequest(t *testing.T) {
	codectest.Paths(t, "request", func(b string) bool { return codectest.Reading(t, "readIdemRequest", readIdemRequest, []byte(b)) },
		[]string{
			`{"s":"key_1/k-1","h":"9f86d0818","st":201,"exp":"2026-12-02T17:04:05.123456Z"}`,
			`{"s":"acc_1/x","h":"h","st":0,"exp":"0001-01-01T00:00:00Z"}`,
			`{"s":"k"}`,
		},
		[]string{`null`, `{"s":"k","s":"j"}`, `{"h":"h","s":"k"}`, `{"S":"k"}`, `{"s":"\u00e9"}`, `{"s":"k","st":1.0}`, `{"s":"k"} `, `{"s":"k","x":1}`})
}
