package audit

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestProbe56DocumentedEndpointsAreServed: every endpoint README.md and
// CHANGELOG.md name as `METHOD /path` (the operator reads the admin ones
// there, the integrator the /v1 ones) is served with that method: /v1, /mcp,
// /oauth and /openapi.json on every coordinator's API listener, /admin on
// every coordinator's admin socket. A request to each, with ids that name
// nothing and an empty body (so that nothing is made, changed or removed),
// may be refused in any way but that of a route the coordinator does not
// have: a 404 route_not_found, or a 405. Before, both documents sent the
// operator to `GET /v1/admin/cluster/status` for `state_epoch`, a path no
// listener serves (404 route_not_found on the API port and on the admin
// socket); the route is `GET /admin/cluster/status`.
func TestProbe56DocumentedEndpointsAreServed(t *testing.T) {
	var eps []docEndpoint
	for _, f := range []string{"../../README.md", "../../CHANGELOG.md"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		eps = append(eps, documentedEndpoints(f[len("../../"):], string(b))...)
	}
	if len(eps) < 40 {
		t.Fatalf("%d endpoints named in README.md and CHANGELOG.md; the documents name more than 40", len(eps))
	}
	r := sharedLightRig(t, "probe56docs")
	f := r.follower()
	web := &http.Client{Timeout: 30 * time.Second}
	for _, e := range eps {
		switch {
		case strings.HasPrefix(e.path, "/internal/"):
			continue // the coordinators' own calls, behind the cluster secret
		case strings.HasPrefix(e.path, "/admin/"):
			for i := range r.c.Len() {
				p := r.c.Nodes[i]
				hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
					DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
						return (&net.Dialer{}).DialContext(ctx, "unix", p.AdminSocket())
					},
				}}
				probe56Served(t, hc, e, "http://admin", "", "the admin socket of coordinator "+p.ID)
			}
		default:
			for _, i := range []int{0, f} {
				probe56Served(t, web, e, r.c.URL(i), r.keyA, "coordinator "+r.c.Nodes[i].ID)
			}
		}
	}
}

// docEndpoint is one `METHOD /path` a document names, the path's parameters
// filled with a value naming nothing and its query left out.
type docEndpoint struct {
	method, path string
	where        string // the document and line
}

var (
	// docEndpointRE is a method (or several, |-separated) and a path in
	// backquotes, the two perhaps on two lines of the text.
	docEndpointRE = regexp.MustCompile("`((?:GET|POST|PUT|PATCH|DELETE)(?:\\|(?:GET|POST|PUT|PATCH|DELETE))*)\\s+(/[^`?\\s]*)")
	docParamRE    = regexp.MustCompile(`\{[^}/]*\}|:[A-Za-z]+`)
)

// documentedEndpoints lists the endpoints text (the document name) names:
// each method of `PUT|DELETE /p`, each path of `/a|b/c` and of `/a[/{id}]`.
// A path of the second brand's (/v1/vps…), served only where a coordinator
// runs that brand, is left out.
func documentedEndpoints(name, text string) []docEndpoint {
	var out []docEndpoint
	for _, m := range docEndpointRE.FindAllStringSubmatchIndex(text, -1) {
		line := strings.Count(text[:m[0]], "\n") + 1
		methods, path := text[m[2]:m[3]], text[m[4]:m[5]]
		paths := []string{strings.TrimRight(path, ".,;:)")}
		if i := strings.Index(paths[0], "["); i >= 0 && strings.HasSuffix(paths[0], "]") {
			paths = []string{paths[0][:i], paths[0][:i] + paths[0][i+1:len(paths[0])-1]}
		}
		for strings.Contains(paths[0], "|") { // one segment's alternatives at a time
			var next []string
			for _, p := range paths {
				segs := strings.Split(p, "/")
				for i, s := range segs {
					if strings.Contains(s, "|") {
						for _, alt := range strings.Split(s, "|") {
							segs[i] = alt
							next = append(next, strings.Join(segs, "/"))
						}
						break
					}
				}
			}
			paths = next
		}
		for _, method := range strings.Split(methods, "|") {
			for _, p := range paths {
				if strings.HasPrefix(p, "/v1/vps") {
					continue
				}
				e := docEndpoint{method: method, path: docParamRE.ReplaceAllString(p, "probe56_none"), where: name + ":" + strconv.Itoa(line)}
				if !slices.ContainsFunc(out, func(o docEndpoint) bool { return o.method == e.method && o.path == e.path }) {
					out = append(out, e)
				}
			}
		}
	}
	return out
}

// probe56Served sends e to base with hc (key, when not empty, as a Bearer
// key) and fails t when the answer is that of a route the listener does not
// serve.
func probe56Served(t *testing.T, hc *http.Client, e docEndpoint, base, key, at string) {
	t.Helper()
	var body io.Reader
	if e.method != http.MethodGet && e.method != http.MethodDelete {
		body = strings.NewReader("{}")
	}
	req, err := http.NewRequest(e.method, base+e.path, body)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Errorf("%s %s (%s) at %s: %v", e.method, e.path, e.where, at, err)
		return
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	var ae struct {
		Code string `json:"code"`
	}
	_ = json.Unmarshal(b, &ae)
	if resp.StatusCode == http.StatusMethodNotAllowed || resp.StatusCode == http.StatusNotFound && ae.Code == "route_not_found" {
		t.Errorf("%s %s, as %s names it, at %s: %d %.200s; want the route served", e.method, e.path, e.where, at, resp.StatusCode, b)
	}
}
