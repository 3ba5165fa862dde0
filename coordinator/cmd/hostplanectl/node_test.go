package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hostplane/hostplane/pkg/api"
)

// fakeAgent serves a canned local API on a unix socket and records requests.
func fakeAgent(t *testing.T) (string, *[]string) {
	t.Helper()
	var seen []string
	mux := http.NewServeMux()
	reply := func(w http.ResponseWriter, status int, v any) {
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(v)
	}
	mux.HandleFunc("POST /v1/vms/{name}/stop", func(w http.ResponseWriter, r *http.Request) {
		var req api.NodeStopRequest
		_ = json.NewDecoder(r.Body).Decode(&req)
		seen = append(seen, r.PathValue("name")+" "+req.OpID)
		reply(w, 200, api.NodeOperation{ID: req.OpID, Kind: api.NodeOpStop, Target: r.PathValue("name"), State: api.NodeOpSucceeded,
			Result: &api.NodeOpResult{PowerMethod: api.NodePowerForced, Message: "forced off"}})
	})
	mux.HandleFunc("POST /v1/vms", func(w http.ResponseWriter, r *http.Request) {
		var req api.NodeProvisionRequest
		_ = json.NewDecoder(r.Body).Decode(&req)
		seen = append(seen, fmt.Sprintf("provision %s bridge=%s ipv4=%s ipv6=%s gateway6=%s resolvers=%s",
			req.Name, req.Bridge, req.IPv4, req.IPv6, req.Gateway6, strings.Join(req.Resolvers, ",")))
		reply(w, 400, api.NodeErrorResponse{Error: api.NodeError{Code: api.NodeErrInvalid, Message: "vm name \"a/b\" must be …"}})
	})
	mux.HandleFunc("POST /v1/vms/{name}/start", func(w http.ResponseWriter, r *http.Request) {
		reply(w, 200, api.NodeOperation{ID: "x", Kind: api.NodeOpStart, Target: "vm1", State: api.NodeOpFailed,
			Error: &api.NodeError{Code: api.NodeErrUnavailable, Message: "start vm1: libvirt is not reachable"}})
	})
	return serveSocket(t, mux.ServeHTTP), &seen
}

func runNode(args ...string) (string, error) {
	cmd := newNodeCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

func TestNodeCLI(t *testing.T) {
	sock, seen := fakeAgent(t)

	out, err := runNode("--socket", sock, "vm", "stop", "vm1", "--op-id", "op-7", "--grace", "5s")
	if err != nil || !strings.Contains(out, "vm.stop vm1: succeeded (forced) [op op-7]") || (*seen)[0] != "vm1 op-7" {
		t.Fatalf("stop: %q %v %v", out, err, *seen)
	}
	out, err = runNode("--socket", sock, "--json", "vm", "stop", "vm1", "--op-id", "op-8")
	var op api.NodeOperation
	if err != nil || json.Unmarshal([]byte(out), &op) != nil || op.Result.PowerMethod != api.NodePowerForced {
		t.Fatalf("stop --json: %q %v", out, err)
	}
	// Rejected input is a usage error (exit 2).
	_, err = runNode("--socket", sock, "vm", "provision", "a/b", "--template", "t")
	var ue usageError
	if !errors.As(err, &ue) {
		t.Fatalf("invalid input: %v", err)
	}
	// --template is checked by the agent's rule before anything is sent,
	// naming the flag (before, "../x" and "Debian" went to the agent).
	before := len(*seen)
	for _, args := range [][]string{
		{"vm", "provision", "vm3", "--template", "../x"}, {"vm", "provision", "vm3", "--template", "Debian"}, {"vm", "provision", "vm3"},
		{"vm", "reinstall", "vm1", "--template", "a b"}, {"vm", "reinstall", "vm1"},
	} {
		_, err := runNode(append([]string{"--socket", sock}, args...)...)
		if !errors.As(err, &ue) || !strings.HasPrefix(err.Error(), "--template") {
			t.Errorf("%q: %v, want a usage error naming --template", args, err)
		}
	}
	if len(*seen) != before {
		t.Errorf("refused --template reached the agent: %q", (*seen)[before:])
	}
	// The network flags reach the agent's provision request.
	_, _ = runNode("--socket", sock, "vm", "provision", "vm2", "--template", "t", "--bridge", "br-pub", "--ipv4", "198.51.100.10/24",
		"--ipv6", "2001:db8:0:5::1/64", "--gateway6", "fe80::1", "--resolver", "198.51.100.53", "--resolver", "2001:db8::53")
	if want := "provision vm2 bridge=br-pub ipv4=198.51.100.10/24 ipv6=2001:db8:0:5::1/64 gateway6=fe80::1 resolvers=198.51.100.53,2001:db8::53"; !slices.Contains(*seen, want) {
		t.Fatalf("provision request: %q, want %q", *seen, want)
	}
	// A failed operation prints its record and returns its error (exit 1).
	out, err = runNode("--socket", sock, "vm", "start", "vm1", "--op-id", "x")
	var ne *api.NodeError
	if !errors.As(err, &ne) || ne.Code != api.NodeErrUnavailable || !strings.Contains(out, "failed") {
		t.Fatalf("failed op: %q %v", out, err)
	}
	if _, err := runNode("--socket", sock, "vm", "stop", "vm1", "--grace", "1500ms"); !errors.As(err, &ue) {
		t.Fatalf("fractional grace: %v", err)
	}
	if _, err := runNode("--socket", filepath.Join(t.TempDir(), "none.sock"), "vm", "list"); err == nil || !strings.Contains(err.Error(), "not reachable") {
		t.Fatalf("unreachable agent: %v", err)
	}
}
