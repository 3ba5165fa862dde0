package httpapi

import (
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/internal/plainjson"
	"github.com/hostplane/hostplane/pkg/api"
)

// encodeServerOrder writes a server order's 201 body as writeJSON's
// json.Encoder writes it (newline included), without reflection, or gives
// up (ok false: use encoding/json) when one of its times is not UTC within
// years 0-9999. The leader answers every POST /v1/servers with it (the
// order's server, action and paid invoice); encoding/json's reflection took
// ~30 µs of the leader's CPU per order under BenchmarkOrderCPU's perf
// recording, a ticket's answer ~4. TestServerOrderBodyMatchesEncodingJSON
// and FuzzEncodeServerOrderBody hold it to encoding/json's bytes.
func encodeServerOrder(o *api.ServerOrder) ([]byte, bool) {
	n := 1024 + len(o.Server.Label) + len(o.Server.Hostname) + len(o.RootPassword)
	for i := range o.Invoice.Lines {
		n += 100 + len(o.Invoice.Lines[i].Description)
	}
	n += 160 * len(o.Invoice.Payments)
	b := append(make([]byte, 0, n), `{"server":`...)
	b, ok := store.AppendAPIServer(b, &o.Server)
	if ok {
		b, ok = store.AppendAPIAction(append(b, `,"action":`...), &o.Action)
	}
	if ok {
		b, ok = store.AppendAPIInvoice(append(b, `,"invoice":`...), &o.Invoice)
	}
	if !ok {
		return nil, false
	}
	if o.RootPassword != "" {
		b = plainjson.AppendJSONString(append(b, `,"root_password":`...), o.RootPassword)
	}
	return append(b, '}', '\n'), true
}
