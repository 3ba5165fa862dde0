package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/hostplane/hostplane/internal/socktest"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/client"
)

// recorder answers every request 404 and keeps the request-URI as sent.
type recorder struct {
	mu   sync.Mutex
	uris []string
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	r.uris = append(r.uris, req.RequestURI)
	r.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusNotFound)
	_ = json.NewEncoder(w).Encode(api.NewError(http.StatusNotFound, "not_found", "nothing here"))
}

func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.uris
	r.uris = nil
	return out
}

// brokenPath says why a sent request-URI's path would reach another route
// than its method's: an empty, "." or ".." segment ("" if none).
func brokenPath(uri string) string {
	p, _, _ := strings.Cut(uri, "?")
	for _, s := range strings.Split(strings.TrimPrefix(p, "/"), "/") {
		if s == "" || s == "." || s == ".." {
			return "segment " + `"` + s + `"`
		}
	}
	return ""
}

// TestEmptyIDsAreNotSent calls every method of Client, Admin and NodeClient
// with each of its string arguments in turn empty, ".", "..", or holding
// '/', '?' or '#' (the others "x"): no request goes out with a path that
// would reach another route or resource (an empty, "." or ".." segment:
// "/admin/hosting//suspend", "/v1/servers/.."), and a method refusing
// answers ErrBadPathValue naming the argument. Before, DeleteHosting(ctx,
// "", k) sent DELETE /v1/hosting/ and Admin.Suspend(ctx, "hosting", "", r)
// POST /admin/hosting//suspend.
func TestEmptyIDsAreNotSent(t *testing.T) {
	rec := &recorder{}
	tcp := httptest.NewServer(rec)
	defer tcp.Close()
	sock := socktest.Serve(t, filepath.Join(t.TempDir(), "agent.sock"), rec)

	c := client.New(tcp.URL, "k")
	adm := &client.Admin{Socket: "test", HTTP: &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", tcp.Listener.Addr().String())
	}}}}
	node := client.NodeNew(sock)
	defer node.Close()

	ctx := context.Background()
	ctxType := reflect.TypeFor[context.Context]()
	refused, methods := 0, 0
	for _, recv := range []any{c, adm, node} {
		v := reflect.ValueOf(recv)
		for m := 0; m < v.NumMethod(); m++ {
			meth, mt := v.Method(m), v.Type().Method(m)
			ft := meth.Type()
			if ft.NumIn() == 0 || ft.In(0) != ctxType || mt.Name == "Do" || mt.Name == "DoWith" {
				continue // not a call (Close), or the raw Do the caller gives a path to
			}
			var strs []int
			for i := 1; i < ft.NumIn(); i++ {
				if ft.In(i).Kind() == reflect.String {
					strs = append(strs, i)
				}
			}
			methods++
			for _, i := range strs {
				for _, bad := range []string{"", ".", "..", "a/b", "../account", "a?b", "a#b"} {
					args := make([]reflect.Value, ft.NumIn())
					args[0] = reflect.ValueOf(ctx)
					for j := 1; j < ft.NumIn(); j++ {
						args[j] = reflect.Zero(ft.In(j))
						if ft.In(j).Kind() == reflect.String {
							args[j] = reflect.ValueOf("x").Convert(ft.In(j))
						}
					}
					args[i] = reflect.ValueOf(bad).Convert(ft.In(i))
					out := meth.Call(args)
					err, _ := out[len(out)-1].Interface().(error)
					sent := rec.take()
					for _, uri := range sent {
						if why := brokenPath(uri); why != "" {
							t.Errorf("%T.%s with argument %d = %q sent %s (%s)", recv, mt.Name, i, bad, uri, why)
						}
					}
					if errors.Is(err, client.ErrBadPathValue) {
						refused++
						if len(sent) > 0 {
							t.Errorf("%T.%s with argument %d = %q: refused (%v) but sent %q", recv, mt.Name, i, bad, err, sent)
						}
					}
				}
			}
		}
	}
	if methods < 100 || refused == 0 {
		t.Fatalf("called %d methods, %d refusals: the walk missed them", methods, refused)
	}

	// The error names the argument and shows where it went.
	for _, tc := range []struct {
		call func() error
		want string
	}{
		{func() error { _, err := adm.Suspend(ctx, "hosting", "", "r"); return err }, "POST /admin/hosting/{id}/suspend: id is empty"},
		{func() error { _, err := c.DeleteServerSnapshot(ctx, "srv_1", "..", ""); return err }, `DELETE /v1/servers/srv_1/snapshots/{snapshotID}: snapshotID ".." is not a name`},
		{func() error { _, err := adm.Account(ctx, "a/b"); return err }, `GET /admin/accounts/{idOrEmail}: idOrEmail "a/b" holds one of / ? # \`},
		{func() error { _, err := node.VM(ctx, "vm\n"); return err }, `GET /vms/{name}: name "vm\n" holds a control character`},
	} {
		err := tc.call()
		if !errors.Is(err, client.ErrBadPathValue) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error %v, want ErrBadPathValue with %q", err, tc.want)
		}
	}
	if sent := rec.take(); len(sent) > 0 {
		t.Errorf("refused calls sent %q", sent)
	}
	// A good id is sent as before, escaped.
	if _, err := c.Server(ctx, "srv_1 x"); err == nil || errors.Is(err, client.ErrBadPathValue) {
		t.Errorf("Server(srv_1 x): %v, want the server's 404", err)
	}
	if sent := rec.take(); len(sent) != 1 || sent[0] != "/v1/servers/srv_1%20x" {
		t.Errorf("Server(srv_1 x) sent %q", sent)
	}
}
