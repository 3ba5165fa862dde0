package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hostplane/hostplane/internal/termtest"
	"github.com/hostplane/hostplane/pkg/api"
)

// hostileField is outside text as it can reach an operator's terminal: a
// bidi override, C1 controls (CSI, NEL), a line separator, an escape
// sequence, a carriage return and a newline that would forge a row.
const hostileField = "evil\u202egnp.exe \u009b2J\u0085\u2028\x1b[31m\rforged\nrow"

// fill sets every string reachable from v (a pointer) to s, ids and
// enumerations too (a printer cannot tell which field a future change fills
// from outside); every slice and map gets one element, every pointer a
// value, every time a fixed one.
func fill(v reflect.Value, s string, depth int) {
	if depth > 8 {
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		fill(v.Elem(), s, depth+1)
	case reflect.String:
		v.SetString(s)
	case reflect.Struct:
		if v.Type() == reflect.TypeOf(time.Time{}) {
			v.Set(reflect.ValueOf(time.Date(2026, 12, 5, 4, 0, 0, 0, time.UTC)))
			return
		}
		for i := 0; i < v.NumField(); i++ {
			if f := v.Type().Field(i); f.IsExported() {
				fill(v.Field(i), s, depth+1)
			}
		}
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		fill(v.Index(0), s, depth+1)
	case reflect.Map:
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fill(k, s, depth+1)
		fill(e, s, depth+1)
		v.Set(reflect.MakeMap(v.Type()))
		v.SetMapIndex(k, e)
	}
}

// filled makes a T with every string holding the text given.
func filled[T any]() func(string) any {
	return func(s string) any {
		var v T
		fill(reflect.ValueOf(&v), s, 0)
		return v
	}
}

// fakeSocket serves answers (method and path → a value made from the text
// given) on a unix socket, with text, and 404 naming the request otherwise.
func fakeSocket(t *testing.T, answers map[string]func(string) any, text *atomic.Pointer[string]) string {
	t.Helper()
	return serveSocket(t, func(w http.ResponseWriter, r *http.Request) {
		mk, ok := answers[r.Method+" "+r.URL.Path]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprintf(w, `{"error":{"code":"not_found","message":"test has no answer for %s %s"}}`, r.Method, r.URL.Path)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(mk(*text.Load()))
	})
}

// holds reports whether the decoded JSON value v holds the string s.
func holds(v any, s string) bool {
	switch v := v.(type) {
	case string:
		return v == s
	case []any:
		for _, e := range v {
			if holds(e, s) {
				return true
			}
		}
	case map[string]any:
		for k, e := range v {
			if k == s || holds(e, s) {
				return true
			}
		}
	}
	return false
}

// TestPrintersShowOutsideTextSafely walks hostplanectl's read commands
// (and the oauth commands that print a client's name: a client_name
// registered before registration refused bidi and C1 controls keeps them)
// with the real binary against a socket (admin and agent) answering the
// API's types with every string set to hostileField: a domain's status
// reason and last change (the registry's text), a reverse zone's last
// error (PowerDNS's), a server's label, an account's name, a node's
// hostname… No output holds a control, bidi or separator character raw
// (ticket show's thread keeps its newlines and tabs), and each prints as
// many lines as with plain text, so no field forges a row. With --json the
// output holds none raw either, and decodes to the text as served.
func TestPrintersShowOutsideTextSafely(t *testing.T) {
	bin := buildCtl(t)
	var text atomic.Pointer[string]
	answers := map[string]func(string) any{
		"GET /admin/actions":                       filled[api.AdminActionList](),
		"GET /admin/actions/act_1":                 filled[api.AdminAction](),
		"GET /admin/accounts/acc_1":                filled[api.Account](),
		"GET /admin/accounts/acc_1/keys":           filled[[]api.KeyInfo](),
		"GET /admin/keys/key_1/usage":              filled[[]api.KeyUsage](),
		"GET /admin/accounts/acc_1/pricing":        filled[api.AccountPricing](),
		"GET /admin/accounts/acc_1/connected-apps": filled[api.ConnectedAppList](),
		"POST /admin/oauth/approve":                filled[api.OAuthApproval](),
		"POST /admin/connected-apps/app_1/revoke":  filled[api.ConnectedApp](),
		"GET /admin/tickets":                       filled[api.AdminTicketList](),
		"GET /admin/tickets/tkt_1":                 filled[api.AdminTicket](),
		"GET /admin/cluster/status":                filled[api.ClusterStatus](),
		"GET /admin/domains":                       filled[[]api.AdminDomain](),
		"GET /admin/domains/dom_1":                 filled[api.AdminDomain](),
		"GET /admin/hosting":                       filled[[]api.AdminHostingAccount](),
		"GET /admin/ip-pools":                      filled[[]api.IPPool](),
		"GET /admin/ip-pools/p1":                   filled[api.IPPoolDetail](),
		"GET /admin/products":                      filled[[]api.AdminProduct](),
		"GET /admin/reverse-zones":                 filled[[]api.ReverseZone](),
		"GET /admin/servers":                       filled[[]api.AdminServer](),
		"GET /admin/servers/srv_1":                 filled[api.AdminServer](),
		"GET /admin/os-templates":                  filled[[]api.OSTemplateLabel](),
		"GET /admin/nodes":                         filled[[]api.AgentNode](),
		"GET /admin/nodes/n1":                      filled[api.AgentNode](),
		"GET /v1/templates":                        filled[[]api.NodeTemplate](),
		"GET /v1/vms":                              filled[[]api.NodeVM](),
		"GET /v1/vms/vm1":                          filled[api.NodeVM](),
		"GET /v1/vms/vm1/snapshots":                filled[[]api.NodeSnapshot](),
		"GET /v1/operations/op1":                   filled[api.NodeOperation](),
		"GET /v1/stats":                            filled[api.NodeStats](),
	}
	sock := fakeSocket(t, answers, &text)
	for _, c := range []struct {
		args      []string
		multiline bool
	}{
		{[]string{"action", "list"}, false},
		{[]string{"action", "get", "act_1"}, false},
		{[]string{"account", "show", "acc_1"}, false},
		{[]string{"account", "pricing", "acc_1"}, false},
		{[]string{"key", "list", "acc_1"}, false},
		{[]string{"key", "usage", "key_1"}, false},
		{[]string{"oauth", "apps", "acc_1"}, false},
		{[]string{"oauth", "approve", "WDJB-MJHT", "--account", "acc_1"}, false},
		{[]string{"oauth", "deny", "WDJB-MJHT"}, false},
		{[]string{"oauth", "revoke", "app_1"}, false},
		{[]string{"ticket", "list"}, false},
		{[]string{"ticket", "show", "tkt_1"}, true},
		{[]string{"cluster", "status"}, false},
		{[]string{"domain", "list"}, false},
		{[]string{"domain", "show", "dom_1"}, false},
		{[]string{"hosting", "list"}, false},
		{[]string{"ip-pool", "list"}, false},
		{[]string{"ip-pool", "show", "p1"}, false},
		{[]string{"product", "list"}, false},
		{[]string{"reverse-zone", "list"}, false},
		{[]string{"server", "list"}, false},
		{[]string{"server", "show", "srv_1"}, false},
		{[]string{"template", "list"}, false},
		{[]string{"node", "list", "--admin-socket", sock}, false},
		{[]string{"node", "show", "n1", "--admin-socket", sock}, false},
		{[]string{"node", "template", "list", "--socket", sock}, false},
		{[]string{"node", "vm", "list", "--socket", sock}, false},
		{[]string{"node", "vm", "show", "vm1", "--socket", sock}, false},
		{[]string{"node", "vm", "snapshot", "list", "vm1", "--socket", sock}, false},
		{[]string{"node", "op", "show", "op1", "--socket", sock}, false},
		{[]string{"node", "stats", "--socket", sock}, false},
	} {
		args := c.args
		if args[0] != "node" {
			args = append([]string{"--socket", sock}, args...)
		}
		plain := "plain"
		text.Store(&plain)
		plainOut, errOut, code := runCtl(t, bin, args...)
		if code != 0 {
			t.Errorf("%v with plain text: exit %d: %s", c.args, code, errOut)
			continue
		}
		hostile := hostileField
		text.Store(&hostile)
		out, errOut, code := runCtl(t, bin, args...)
		if code != 0 {
			t.Errorf("%v: exit %d: %s", c.args, code, errOut)
			continue
		}
		if bad := termtest.Unsafe(out+errOut, c.multiline); len(bad) > 0 {
			t.Errorf("hostplanectl %s prints %v raw:\n%s", strings.Join(c.args, " "), bad, out)
		}
		if !c.multiline && strings.Count(out, "\n") != strings.Count(plainOut, "\n") {
			t.Errorf("hostplanectl %s prints %d lines, %d with plain text; a field forges lines:\n%s", strings.Join(c.args, " "), strings.Count(out, "\n"), strings.Count(plainOut, "\n"), out)
		}
		js, errOut, code := runCtl(t, bin, append([]string{"--json"}, args...)...)
		if code != 0 {
			t.Errorf("--json %v: exit %d: %s", c.args, code, errOut)
			continue
		}
		if bad := termtest.Unsafe(js, false); len(bad) > 0 {
			t.Errorf("hostplanectl --json %s prints %v raw:\n%s", strings.Join(c.args, " "), bad, js)
		}
		var v any
		if err := json.Unmarshal([]byte(js), &v); err != nil || !holds(v, hostileField) {
			t.Errorf("hostplanectl --json %s: %v; want JSON holding the text as served:\n%s", strings.Join(c.args, " "), err, js)
		}
	}
}
