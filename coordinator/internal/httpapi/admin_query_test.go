package httpapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
)

// adminCall serves s's operator API in process (every admin mount; the
// nodes' liveness: all live): call answers a request's status and body.
func adminCall(t *testing.T, s *srvAPI) (call func(method, target, body string) (int, string)) {
	live := func(string) (time.Time, bool) { return time.Now(), true }
	adm := s.a.ServerAdmin(s.a.NodeAdmin(s.a.ReverseZoneAdmin(s.a.AdminHandler()), NodeDeps{Live: live}),
		ServerAdminConfig{Nodes: NodeDeps{Live: live}})
	return func(method, target, body string) (int, string) {
		t.Helper()
		w := httptest.NewRecorder()
		adm.ServeHTTP(w, httptest.NewRequest(method, target, strings.NewReader(body)))
		return w.Code, w.Body.String()
	}
}

// TestAdminQueryParameters: the operator API refuses a query parameter the
// route does not take, as /v1 does (TestUnknownQueryParameters), before
// anything is read or changed. Before, GET /admin/servers?acount=… (a typo)
// listed every account's servers and POST /admin/accounts?dry_run=1 created
// the account.
func TestAdminQueryParameters(t *testing.T) {
	s := newSrvAPI(t)
	acc, _ := s.account(api.AllScopes...)
	call := adminCall(t, s)
	for _, c := range []struct{ method, target, body, want string }{
		{"GET", "/admin/servers?acount=" + acc, "", `unknown query parameter \"acount\": GET /admin/servers takes account, node`},
		{"GET", "/admin/servers?account=" + acc + "&account=acc_x", "", `query parameter \"account\" given more than once`},
		{"GET", "/admin/hosting?Account=" + acc, "", `did you mean \"account\"?`},
		{"GET", "/admin/domains?limit=5", "", `unknown query parameter \"limit\"`},
		{"GET", "/admin/accounts/" + acc + "?expand=keys", "", `takes no query parameters`},
		{"GET", "/admin/nodes?state=ready", "", `unknown query parameter \"state\"`},
		{"GET", "/admin/cluster/backup?format=tar", "", `unknown query parameter \"format\"`},
		{"GET", "/admin/cluster/status?x=%zz", "", `query string is malformed`},
		{"POST", "/admin/accounts?dry_run=1", `{"email":"q@example.com","name":"Q"}`, `unknown query parameter \"dry_run\"`},
	} {
		code, out := call(c.method, c.target, c.body)
		if code != http.StatusBadRequest || !strings.Contains(out, `"invalid_query"`) || !strings.Contains(out, c.want) {
			t.Errorf("%s %s: %d %s, want a 400 invalid_query saying %s", c.method, c.target, code, out, c.want)
		}
	}
	// Nothing was created by the refused POST, and the declared filters work.
	if code, out := call("POST", "/admin/accounts", `{"email":"q@example.com","name":"Q"}`); code != http.StatusCreated {
		t.Errorf("create after the refused one: %d %s (the refused one created it?)", code, out)
	}
	for _, target := range []string{
		"/admin/servers?account=" + acc + "&node=hv-a", "/admin/hosting?account=" + acc, "/admin/domains?account=" + acc,
		"/admin/tickets?status=open&account=" + acc + "&limit=5", "/admin/accounts/" + acc,
	} {
		if code, out := call("GET", target, ""); code != http.StatusOK {
			t.Errorf("GET %s: %d %s", target, code, out)
		}
	}
}

// TestAdminListQueryRules: every operator list route follows /v1's rule
// for its query string (queryparams.go, tests/audit TestProbe9QueryRules):
// a parameter it takes given empty (?cursor=, ?status=, ?limit=, all of
// them at once) lists what no parameter lists; the same parameter given
// twice (empty or not), a name it does not take (empty or not) or one in
// another case is a 400 invalid_query naming it. Before, GET
// /admin/actions?cursor= (and its other parameters empty) and
// /admin/tickets?limit=, ?status=, ?account= were 400s while
// /admin/servers?account= listed every server.
func TestAdminListQueryRules(t *testing.T) {
	s := newSrvAPI(t)
	acc, key := s.account(api.AllScopes...)
	s.server(acc)
	if r := s.call(key, "POST", "/v1/tickets", `{"subject":"query rules","message":"hello"}`); r.status != http.StatusCreated {
		t.Fatalf("open a ticket: %d %s", r.status, r.body)
	}
	call := adminCall(t, s)
	// Every operator route that lists, with the parameters it takes.
	lists := map[string][]string{
		"/admin/servers":                             adminQuery["GET /admin/servers"],
		"/admin/actions":                             adminQuery["GET /admin/actions"],
		"/admin/tickets":                             adminQuery["GET /admin/tickets"],
		"/admin/domains":                             adminQuery["GET /admin/domains"],
		"/admin/hosting":                             adminQuery["GET /admin/hosting"],
		"/admin/nodes":                               nil,
		"/admin/ip-pools":                            nil,
		"/admin/os-templates":                        nil,
		"/admin/products":                            nil,
		"/admin/reverse-zones":                       nil,
		"/admin/accounts/" + acc + "/keys":           nil,
		"/admin/accounts/" + acc + "/connected-apps": nil,
	}
	for pattern := range adminQuery {
		if path, ok := strings.CutPrefix(pattern, "GET "); ok && path != "/admin/cluster/backup" && lists[path] == nil {
			t.Errorf("%s takes query parameters but is not in the table", pattern)
		}
	}
	bad := func(target, name string) {
		t.Helper()
		code, out := call("GET", target, "")
		var e api.Error
		_ = json.Unmarshal([]byte(out), &e)
		if code != http.StatusBadRequest || e.Code != "invalid_query" || !strings.Contains(e.Message, strconv.Quote(name)) {
			t.Errorf("GET %s: %d %s; want a 400 invalid_query naming %q", target, code, out, name)
		}
	}
	for path, params := range lists {
		code, want := call("GET", path, "")
		if code != http.StatusOK {
			t.Errorf("GET %s: %d %s", path, code, want)
			continue
		}
		same := func(target string) {
			t.Helper()
			if code, out := call("GET", target, ""); code != http.StatusOK || out != want {
				t.Errorf("GET %s: %d %s; want what GET %s lists: %s", target, code, out, path, want)
			}
		}
		var empties []string
		for _, p := range params {
			same(path + "?" + p + "=")
			same(path + "?" + p) // no "=": empty all the same
			bad(path+"?"+p+"=&"+p+"=", p)
			bad(path+"?"+p+"=1&"+p+"=1", p)
			bad(path+"?"+strings.ToUpper(p)+"=", strings.ToUpper(p))
			empties = append(empties, p+"=")
		}
		if len(empties) > 1 {
			same(path + "?" + strings.Join(empties, "&"))
		}
		bad(path+"?bogus=", "bogus")
		bad(path+"?bogus=1", "bogus")
	}
}
