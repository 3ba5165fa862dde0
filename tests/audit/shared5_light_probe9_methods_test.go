package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/tests/framework"
)

// TestProbe9EveryOtherMethodIs405 sends, for every path /openapi.json lists
// (ids that name nothing), every method it does not list for that path, with
// a key holding every scope, through the leader and a follower, to a sunucu
// cluster and to a 444host coordinator. README: "A known path called with
// another method is a 405 with Allow". Each is a 405 method_not_allowed in
// the error envelope, its Allow exactly the path's methods in /openapi.json
// (HEAD with GET), with the X-RateLimit-* headers, and a body sent with it is
// not acted on. Before, a literal segment that a {id} sibling also matches
// was answered by the sibling: GET /v1/domains/transfer and GET
// /v1/servers/quote a 404 "domain not found" / "server not found", DELETE
// /v1/servers/quote the terminate route's 404 (a 403 naming servers:destroy
// with a default key), and the 405s on such a path listed the sibling's
// methods in Allow (POST /v1/servers/ips: "GET, HEAD, DELETE").
func TestProbe9EveryOtherMethodIs405(t *testing.T) {
	t.Run("sunucu", func(t *testing.T) {
		r := sharedLightRig(t, "light")
		for _, i := range []int{0, r.follower()} {
			sweepMethods(t, r.c.URL(i), r.keyA)
		}
		// The operator API alike: POST /admin/nodes/tokens (join tokens)
		// beside GET /admin/nodes/{id}. Before, GET /admin/nodes/tokens was
		// that route's 404 "node tokens not found" and the other methods'
		// 405 listed GET in Allow.
		hc := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", r.c.Nodes[0].AdminSocket())
		}}}
		for _, m := range []string{"GET", "HEAD", "PUT", "PATCH", "DELETE"} {
			req, _ := http.NewRequest(m, "http://admin/admin/nodes/tokens", nil)
			resp, body := framework.Fetch(t, hc, req)
			if resp.StatusCode != 405 || resp.Header.Get("Allow") != "POST" {
				t.Errorf("%s /admin/nodes/tokens: %d Allow %q %.200s; want 405 with Allow POST", m, resp.StatusCode, resp.Header.Get("Allow"), body)
			}
		}
	})
	t.Run("444host", func(t *testing.T) {
		c := framework.NewProcessCluster(t, framework.ProcessOptions{N: 1, Bin: framework.Coordinator(t),
			Extra: func(int, *framework.CoordinatorProcess) []string { return []string{"--brand", "444host"} }})
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		var scopes []string
		rep := framework.NewAPI(t, c.URL(0), nil).Call("", "GET", "/v1/scopes", nil, nil)
		var sc struct {
			Data []struct {
				Scope string `json:"scope"`
			} `json:"data"`
		}
		rep.Decode(t, &sc)
		for _, s := range sc.Data {
			scopes = append(scopes, s.Scope)
		}
		_, key, err := c.NewAccount(ctx, "probe9-444@example.com", scopes...)
		if err != nil {
			t.Fatal(err)
		}
		sweepMethods(t, c.URL(0), key)
	})
}

// sendRaw sends method path to the coordinator at base with key as a Bearer
// token and body, if not nil, as JSON; it returns the status, the header and
// the body (TestProbe8OutsideIn's HEAD and OPTIONS, sweepMethods).
func sendRaw(t *testing.T, hc *http.Client, method, base, path, key string, body io.Reader) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, base+path, body)
	req.Header.Set("Authorization", "Bearer "+key)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, b := framework.Fetch(t, hc, req)
	return resp.StatusCode, resp.Header, b
}

// sweepMethods is TestProbe9EveryOtherMethodIs405 on the coordinator at base.
func sweepMethods(t *testing.T, base, key string) {
	t.Helper()
	hc := &http.Client{Timeout: 15 * time.Second}
	send := func(method, path string) (int, http.Header, []byte) {
		var body io.Reader
		if method != "GET" && method != "HEAD" {
			body = strings.NewReader(`{}`)
		}
		return sendRaw(t, hc, method, base, path, key, body)
	}
	_, _, raw := send("GET", "/openapi.json")
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil || len(doc.Paths) == 0 {
		t.Fatalf("/openapi.json: %v %.200s", err, raw)
	}
	fill := strings.NewReplacer("{id}", "x_00000000000000000000000000", "{ip}", "192.0.2.1", "{snapshotId}", "snap_0000000000000000",
		"{action}", "reboot", "{deliveryId}", "dlv_0000000000000000")
	n := 0
	for p, ops := range doc.Paths {
		var listed []string
		for m := range ops {
			if m != "parameters" {
				listed = append(listed, strings.ToUpper(m))
			}
		}
		want := slices.Clone(listed)
		if slices.Contains(listed, "GET") {
			want = append(want, "HEAD")
		}
		slices.Sort(want)
		path := "/v1" + fill.Replace(p)
		for _, m := range []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"} {
			if slices.Contains(want, m) {
				continue
			}
			n++
			st, hdr, body := send(m, path)
			var allow []string
			for _, a := range strings.Split(hdr.Get("Allow"), ",") {
				if a = strings.TrimSpace(a); a != "" {
					allow = append(allow, a)
				}
			}
			slices.Sort(allow)
			what := m + " " + path + " on " + base
			if st != 405 || !slices.Equal(allow, want) {
				t.Errorf("%s: %d Allow %q %.160s; want 405 with Allow %v (the path's methods in /openapi.json)", what, st, hdr.Get("Allow"), body, want)
				continue
			}
			if hdr.Get("X-RateLimit-Limit") == "" {
				t.Errorf("%s: no X-RateLimit-Limit", what)
			}
			if m == "HEAD" {
				continue
			}
			if e, err := (framework.Reply{Status: st, Body: body}).Envelope(); err != nil || e.Code != "method_not_allowed" || !bytes.Contains(body, []byte(hdr.Get("Allow"))) {
				t.Errorf("%s: %.200s; want a 405 method_not_allowed in the error envelope naming the allowed methods", what, body)
			}
		}
	}
	if n < 100 {
		t.Errorf("only %d path and method pairs probed on %s", n, base)
	}
}
