package audit

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
)

// TestAdminEmptyQueryOnEveryCoordinator: on the leader's admin socket and a
// follower's (which forwards to the leader), an operator list route given
// its parameters empty lists what it lists with none, as /v1 does
// (TestProbe9QueryRules; README: "The operator API … applies the same
// rules"); one given twice, empty or not, is still a 400 invalid_query
// naming it. Before, /admin/actions?cursor=… and /admin/tickets?limit=…
// (empty) were 400s on every coordinator.
func TestAdminEmptyQueryOnEveryCoordinator(t *testing.T) {
	r := sharedLightRig(t, "light")
	if rep := r.write(0, r.keyA, "POST", "/v1/tickets", api.TicketCreateRequest{Subject: "admin query", Message: "hello"}); rep.Status != 201 {
		t.Fatalf("ticket: %s", rep)
	}
	ld, err := r.c.LeaderIndex(20 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	empty := map[string]string{
		"/admin/actions": "account=&cursor=&hosting=&limit=&server=&status=",
		"/admin/tickets": "account=&limit=&status=",
		"/admin/servers": "account=&node=",
		"/admin/domains": "account=",
		"/admin/hosting": "account=",
	}
	for _, i := range []int{ld, r.follower()} {
		adm := r.c.Admin(i)
		for path, q := range empty {
			var want, got bytes.Buffer
			if err := adm.Do(r.ctx, "GET", path, nil, &want); err != nil {
				t.Fatalf("GET %s on coordinator %d: %v", path, i, err)
			}
			if err := adm.Do(r.ctx, "GET", path+"?"+q, nil, &got); err != nil || got.String() != want.String() {
				t.Errorf("GET %s?%s on coordinator %d: %v %s; want what GET %s lists: %s", path, q, i, err, &got, path, &want)
			}
			name, _, _ := strings.Cut(q, "=")
			err := adm.Do(r.ctx, "GET", path+"?"+name+"=&"+name+"=", nil, nil)
			var ae *api.Error
			if !errors.As(err, &ae) || ae.StatusCode != 400 || ae.Code != "invalid_query" || !strings.Contains(ae.Message, strconv.Quote(name)) {
				t.Errorf("GET %s?%s=&%s= on coordinator %d: %v; want a 400 invalid_query naming %q", path, name, name, i, err, name)
			}
		}
	}
}
