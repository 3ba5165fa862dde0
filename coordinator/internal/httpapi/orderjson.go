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
	b, ok := store.EncodeAPIServerOrder(o, 1)
	if !ok {
		return nil, false
	}
	return append(b, '\n'), true
}

// serverOrderKeys are api.ServerOrderRequest's members in the order
// json.Marshal writes them.
var serverOrderKeys = []string{"plan_slug", "label", "hostname", "os_template", "os_family", "location", "ssh_keys"}

// readServerOrderRequest reads a POST /v1/servers body without reflection
// when it is in plainjson's subset (members in json.Marshal's order, each
// once, no whitespace, printable ASCII strings without escapes, nothing
// after the object: what a client marshalling api.ServerOrderRequest
// sends); ok false leaves the body to decodeStrict, which then decodes it
// or names what is wrong. Whatever it reads, decodeStrict reads the same
// (FuzzReadServerOrderRequest). decodeStrict's two passes (encoding/json
// with unknown members refused, then jsonmembers' duplicate and case check)
// took ~20 µs of the leader's CPU per order under BenchmarkOrderCPU's perf
// recording.
func readServerOrderRequest(body []byte) (req api.ServerOrderRequest, ok bool) {
	r := plainjson.NewReader(body)
	ok = r.Fields(serverOrderKeys, &req.PlanSlug, &req.Label, &req.Hostname, &req.OSTemplate, &req.OSFamily, &req.Location, &req.SSHKeys) && r.End()
	return req, ok
}
