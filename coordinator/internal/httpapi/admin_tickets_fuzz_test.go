package httpapi

import (
	"net/http/httptest"
	"net/url"
	"slices"
	"testing"

	"github.com/hostplane/hostplane/pkg/api"
)

// FuzzAdminTicketQuery: any query string either is refused with a 400 or
// yields statuses that are ticket statuses, a limit within 1..1000 and an
// account that is not blank.
func FuzzAdminTicketQuery(f *testing.F) {
	for _, s := range []string{"", "status=open", "status=open,answered&account=acc_x&limit=5", "status=", "status=pending",
		"limit=0", "limit=1001", "limit=-1", "limit=1e3", "account=", "account=%20", "x=1", "status=open&status=closed",
		"status=open,,closed", "account=a%00b", "limit=999999999999999999999", "%zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		r := httptest.NewRequest("GET", "/admin/tickets", nil)
		r.URL.RawQuery = raw
		q, err := parseAdminTicketQuery(r)
		if err != nil {
			he, ok := err.(*httpError)
			if !ok || he.status != 400 {
				t.Fatalf("%q: %v", raw, err)
			}
			return
		}
		for _, s := range q.statuses {
			if !slices.Contains(api.TicketStatuses, s) {
				t.Fatalf("%q: accepted status %q", raw, s)
			}
		}
		if q.limit < 1 || q.limit > adminTicketsMax {
			t.Fatalf("%q: limit %d", raw, q.limit)
		}
		if vals, _ := url.ParseQuery(raw); vals.Has("account") && q.account == "" {
			t.Fatalf("%q: a blank account accepted", raw)
		}
	})
}
