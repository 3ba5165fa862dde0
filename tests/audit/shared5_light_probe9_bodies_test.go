package audit

import (
	"strings"
	"testing"
)

// TestProbe9BodiesOnGETAndDELETE: no GET or DELETE of /openapi.json takes a
// body. One sent with it, through the leader and a follower, is refused as
// the POSTs that take none refuse theirs (README: "an unknown name is 400
// unknown_field"; host_hostile: "nothing is suspended … by a body meant for
// something else"): a 400 naming the member, and nothing is read as filtered
// or changed. No body, a blank one or {} is taken. Before, the body was
// ignored: DELETE /v1/webhooks/{id} with {"dry_run": true} deleted the
// webhook, and GET /v1/tickets with {"status": "open"} listed every ticket.
func TestProbe9BodiesOnGETAndDELETE(t *testing.T) {
	r := sharedLightRig(t, "light")
	f := r.follower()
	ct := map[string]string{"Content-Type": "application/json"}
	r.ticket(0, r.keyA, "probe9 bodies")
	for _, i := range []int{0, f} {
		wh := r.hook(r.keyA, newReceiver(t).URL, "ticket.created")
		for _, b := range []struct{ body, names string }{
			{`{"dry_run":true}`, "dry_run"}, {`{"confirm":false}`, "confirm"}, {`[]`, ""}, {`null`, ""}, {`"x"`, ""}, {`{`, ""},
		} {
			rep := r.call(i, r.keyA, "DELETE", "/v1/webhooks/"+wh.ID, b.body, ct)
			if rep.Status != 400 {
				t.Errorf("DELETE /v1/webhooks/{id} with %s on coordinator %d: %s; want a 400 naming %q", b.body, i, rep, b.names)
			} else if e := rep.DecodeError(t); e.Message == "" || !strings.Contains(e.Message, b.names) {
				t.Errorf("DELETE /v1/webhooks/{id} with %s on coordinator %d: %s; want a 400 naming %q", b.body, i, rep, b.names)
			}
		}
		if rep := r.call(i, r.keyA, "GET", "/v1/webhooks/"+wh.ID, nil, nil); rep.Status != 200 {
			t.Errorf("the webhook after the refused DELETEs on coordinator %d: %s", i, rep)
		}
		if rep := r.call(i, r.keyA, "DELETE", "/v1/webhooks/"+wh.ID, `{}`, ct); rep.Status/100 != 2 {
			t.Errorf("DELETE with {} on coordinator %d: %s; want it deleted", i, rep)
		}
		for _, b := range []struct{ body, names string }{{`{"status":"open"}`, "status"}, {`{"limit":1}`, "limit"}, {`[1]`, ""}} {
			rep := r.call(i, r.keyA, "GET", "/v1/tickets", b.body, ct)
			if rep.Status != 400 {
				t.Errorf("GET /v1/tickets with %s on coordinator %d: %s; want a 400 naming %q", b.body, i, rep, b.names)
			} else if e := rep.DecodeError(t); e.Message == "" || !strings.Contains(e.Message, b.names) {
				t.Errorf("GET /v1/tickets with %s on coordinator %d: %s; want a 400 naming %q", b.body, i, rep, b.names)
			}
		}
		for _, body := range []any{nil, ``, " \n", `{}`} {
			if rep := r.call(i, r.keyA, "GET", "/v1/tickets", body, ct); rep.Status != 200 {
				t.Errorf("GET /v1/tickets with %q on coordinator %d: %s; want 200", body, i, rep)
			}
		}
	}
}
