package audit

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestProbe7BodiesAsDocumented: a client generated from /openapi.json sends
// every operation that takes a body (POST, PUT, PATCH) a body over SPEC.md's
// 1 MiB and a body that is not JSON (Content-Type: text/plain), through the
// leader and a follower. Each is refused as SPEC.md says (413, 415) in the
// error envelope, and the status is one the operation declares in
// /openapi.json: a generated client has no type for an answer its operation
// does not list. Before, nine operations (custom domain, PHP version,
// suspend/unsuspend, SSL retry, ticket close, rotate-secret, redeliver)
// answered 413 and 415 without declaring them.
func TestProbe7BodiesAsDocumented(t *testing.T) {
	r := sharedLightRig(t, "light")
	f := r.follower()
	declared := r.declaredStatuses()
	big := `{"name":"` + strings.Repeat("x", 1<<20) + `"}`

	t.Run("413 and 415 on every operation with a body", func(t *testing.T) {
		probed := 0
		for _, op := range r.operations() {
			if op.method != "POST" && op.method != "PUT" && op.method != "PATCH" {
				continue
			}
			path := "/v1" + strings.NewReplacer("{id}", "x_0000000000000000", "{ip}", "192.0.2.1", "{snapshotId}", "snap_0000000000000000",
				"{action}", "reboot", "{deliveryId}", "dlv_0000000000000000").Replace(op.path)
			for _, i := range []int{0, f} {
				for _, tc := range []struct {
					what, body, ctype string
					want              int
				}{
					{"a body over 1 MiB", big, "application/json", http.StatusRequestEntityTooLarge},
					{"a text/plain body", `{}`, "text/plain", http.StatusUnsupportedMediaType},
				} {
					probed++
					rep := r.call(i, r.keyA, op.method, path, tc.body, map[string]string{"Content-Type": tc.ctype})
					if rep.Status != tc.want || rep.DecodeError(t).Message == "" {
						t.Errorf("%s %s with %s (coordinator %d): %d %.300s; want %d in the error envelope", op.method, op.path, tc.what, i, rep.Status, rep.Body, tc.want)
					}
					if !slices.Contains(declared[op.method+" "+op.path], strconv.Itoa(rep.Status)) {
						t.Errorf("%s %s with %s (coordinator %d) answered %d, which /openapi.json does not declare for it (it declares %v)",
							op.method, op.path, tc.what, i, rep.Status, declared[op.method+" "+op.path])
					}
				}
			}
		}
		if probed < 2*2*30 {
			t.Fatalf("only %d probes: /openapi.json lists fewer operations with a body than expected", probed)
		}
	})

}

// declaredStatuses maps "METHOD /path" of every operation in the first
// coordinator's /openapi.json to the response statuses it declares.
func (r *rig) declaredStatuses() map[string][]string {
	r.t.Helper()
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	r.apis[0].Call("", "GET", "/openapi.json", nil, nil).Decode(r.t, &doc)
	out := map[string][]string{}
	for path, ops := range doc.Paths {
		for method, raw := range ops {
			var op struct {
				Responses map[string]json.RawMessage `json:"responses"`
			}
			if method == "parameters" || json.Unmarshal(raw, &op) != nil {
				continue
			}
			for status := range op.Responses {
				out[strings.ToUpper(method)+" "+path] = append(out[strings.ToUpper(method)+" "+path], status)
			}
		}
	}
	return out
}
