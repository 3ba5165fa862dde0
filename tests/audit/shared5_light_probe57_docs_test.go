package audit

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/brand"
	"github.com/hostplane/hostplane/tests/framework"
)

// probe57DocEndpoints are the endpoints README.md and CHANGELOG.md name that
// TestProbe56DocumentedEndpointsAreServed leaves out: the coordinators' own
// /internal/ calls and the second brand's /v1/vps… paths (each method,
// parameters filled with a value naming nothing).
func probe57DocEndpoints(t *testing.T) (internal, vps []docEndpoint) {
	t.Helper()
	for _, f := range []string{"README.md", "CHANGELOG.md"} {
		b, err := os.ReadFile("../../" + f)
		if err != nil {
			t.Fatal(err)
		}
		text := string(b)
		for _, m := range docEndpointRE.FindAllStringSubmatchIndex(text, -1) {
			methods, path := text[m[2]:m[3]], strings.TrimRight(text[m[4]:m[5]], ".,;:)")
			where := f + ":" + strconv.Itoa(strings.Count(text[:m[0]], "\n")+1)
			for _, method := range strings.Split(methods, "|") {
				e := docEndpoint{method: method, path: docParamRE.ReplaceAllString(path, "probe57_none"), where: where}
				same := func(o docEndpoint) bool { return o.method == e.method && o.path == e.path }
				switch {
				case strings.HasPrefix(path, "/internal/") && !slices.ContainsFunc(internal, same):
					internal = append(internal, e)
				case strings.HasPrefix(path, "/v1/vps") && !slices.ContainsFunc(vps, same):
					vps = append(vps, e)
				}
			}
		}
	}
	// README names the internal admin mount as a route, not a call.
	internal = append(internal, docEndpoint{method: "GET", path: "/internal/admin/cluster/status", where: "README.md (the /internal/admin/ route)"})
	return internal, vps
}

// TestProbe57InternalRoutesAnswerOnlyTheCluster: README names /internal/
// calls (`POST /internal/forward`, `POST /internal/ratelimit/lease`, `POST
// /internal/usage`, the `/internal/admin/` route) as the coordinators' own,
// "authenticated as forwarding is": on every coordinator each is served to a
// caller with the cluster secret (not a 404 or a 405), and refused 401
// `cluster_token` to anyone else — no credentials, a customer's key with
// every scope, a wrong cluster token, a forwarding header from a client —
// without the protocol switch the forward channel makes (never a 101), a
// lease of the key's tokens or a usage report taken (never a 2xx).
func TestProbe57InternalRoutesAnswerOnlyTheCluster(t *testing.T) {
	internal, _ := probe57DocEndpoints(t)
	if len(internal) < 4 {
		t.Fatalf("%d /internal/ endpoints named; README names forward, ratelimit/lease, usage and the admin mount", len(internal))
	}
	r := sharedLightRig(t, "probe57internal")
	hc := &http.Client{Timeout: 30 * time.Second}
	send := func(i int, e docEndpoint, hdr map[string]string) (int, string) {
		var body []byte
		if e.method != http.MethodGet {
			body = []byte("{}")
		}
		// An answer whose body cannot be read whole still counts by its status.
		st, b, err := framework.Send(context.Background(), hc, e.method, r.c.URL(i)+e.path, body, hdr)
		if st == 0 {
			t.Fatalf("%s %s at coordinator %d: %v", e.method, e.path, i, err)
		}
		var ae struct {
			Code string `json:"code"`
		}
		_ = json.Unmarshal(b, &ae)
		return st, ae.Code
	}
	strangers := map[string]map[string]string{
		"no credentials":        nil,
		"a customer's key":      {"Authorization": "Bearer " + r.keyA},
		"a wrong cluster token": {"X-Hostplane-Cluster-Token": "framework-cluster-secret-0000", "Authorization": "Bearer " + r.keyA},
		"a forwarding header":   {"X-Hostplane-Forwarded-By": "c1", "X-Hostplane-Client-Ip": "10.0.0.1", "Authorization": "Bearer " + r.keyA, "Connection": "Upgrade", "Upgrade": "hostplane-forward"},
	}
	for _, e := range internal {
		for i := range r.c.Len() {
			for who, hdr := range strangers {
				if st, code := send(i, e, hdr); st != http.StatusUnauthorized || code != "cluster_token" {
					t.Errorf("%s %s (%s) at coordinator %d with %s: %d %s; want 401 cluster_token", e.method, e.path, e.where, i, who, st, code)
				}
			}
			st, code := send(i, e, map[string]string{"X-Hostplane-Cluster-Token": r.c.Secret})
			if st == http.StatusUnauthorized || st == http.StatusMethodNotAllowed || st == http.StatusNotFound && code == "route_not_found" {
				t.Errorf("%s %s (%s) at coordinator %d with the cluster secret: %d %s; want the route served", e.method, e.path, e.where, i, st, code)
			}
		}
	}
}

// TestProbe57SecondBrandPathsAreServed: every /v1/vps… endpoint README and
// CHANGELOG name (the 444host brand's server paths) is served by the leader
// and by a follower, which forwards it under that brand's name, of a cluster
// of three run with --brand 444host, to a key of that brand's scopes (ids
// that name nothing, an empty body: refused in any way but that of a route
// it does not have). tests/brand runs the 444host seed on one coordinator,
// and checks the other brand's paths are 404s.
func TestProbe57SecondBrandPathsAreServed(t *testing.T) {
	_, vps := probe57DocEndpoints(t)
	if len(vps) < 2 {
		t.Fatalf("%d /v1/vps endpoints named; README and CHANGELOG name at least two", len(vps))
	}
	host444, err := brand.Get("444host")
	if err != nil {
		t.Fatal(err)
	}
	c := framework.NewProcessCluster(t, framework.ProcessOptions{N: 3, Bin: framework.Coordinator(t), RaftTimeout: framework.RaftTimeout,
		Extra: func(int, *framework.CoordinatorProcess) []string { return []string{"--brand", "444host"} }})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, key, err := c.NewAccount(ctx, "probe57-brand@example.com", host444.AllScopes()...)
	if err != nil {
		t.Fatal(err)
	}
	ld, err := c.LeaderIndex(20 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	web := &http.Client{Timeout: 30 * time.Second}
	for _, e := range vps {
		for _, i := range []int{ld, (ld + 1) % c.Len()} {
			probe56Served(t, web, e, c.URL(i), key, "444host coordinator "+c.Nodes[i].ID)
		}
	}
}
