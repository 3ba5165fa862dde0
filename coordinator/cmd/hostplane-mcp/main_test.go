package main

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/hostplane/hostplane/coordinator/internal/httpapi"
	"github.com/hostplane/hostplane/coordinator/internal/mcpserver"
	"github.com/hostplane/hostplane/coordinator/internal/server"
	"github.com/hostplane/hostplane/coordinator/internal/testcluster"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/brand"
	"github.com/hostplane/hostplane/tests/framework"
)

// TestStdio runs hostplane-mcp's server over pipes, as an MCP client runs it,
// against a real coordinator behind HTTPS (a TLS proxy whose certificate is
// given as HOSTPLANE_CA_FILE).
func TestStdio(t *testing.T) {
	c := testcluster.New(t, 1)
	_, key := c.NewAccount("stdio@example.com") // default scopes: no servers:destroy
	target, _ := url.Parse(c.URL(0))
	tlsProxy := httptest.NewTLSServer(&httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(target) }})
	defer tlsProxy.Close()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsProxy.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"HOSTPLANE_API_KEY": key, "HOSTPLANE_API_URL": tlsProxy.URL, "HOSTPLANE_CA_FILE": caFile}

	cs, done := connect(t, env)
	// The minute is the calls' below, not run's start (connect's own).
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	ops, err := mcpserver.OperationsFromDoc(httpapi.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(framework.ToolNames(t, ctx, cs)); n != len(ops) {
		t.Errorf("%d tools over stdio, %d documented operations", n, len(ops))
	}

	// A tool call answers what the REST call answers.
	tk, err := c.Client(0, key).CreateTicket(ctx, api.TicketCreateRequest{Subject: "stdio", Message: "hi"}, "")
	if err != nil {
		t.Fatal(err)
	}
	r, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "get_ticket", Arguments: map[string]any{"id": tk.ID}})
	if err != nil || r.IsError {
		t.Fatalf("get_ticket: %v %+v", err, r)
	}
	req, _ := http.NewRequest("GET", c.URL(0)+"/v1/tickets/"+tk.ID, nil)
	req.Header.Set("Authorization", "Bearer "+key)
	_, restBody := framework.Fetch(t, nil, req)
	var got, want any
	_ = json.Unmarshal([]byte(r.Content[0].(*mcp.TextContent).Text), &got)
	_ = json.Unmarshal(restBody, &want)
	if want == nil || !reflect.DeepEqual(got, want) {
		t.Errorf("get_ticket over stdio:\n%s\nREST:\n%s", r.Content[0].(*mcp.TextContent).Text, restBody)
	}

	// A destructive tool without servers:destroy: the API refuses it.
	r, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "terminate_server", Arguments: map[string]any{"id": "srv_x"}})
	if err != nil {
		t.Fatal(err)
	}
	if text := r.Content[0].(*mcp.TextContent).Text; !r.IsError || !strings.Contains(text, "missing_scope") {
		t.Errorf("terminate_server without servers:destroy: %s", text)
	}

	cs.Close()
	select {
	case err := <-done:
		if err != nil && !strings.Contains(err.Error(), "closed") && err != io.EOF {
			t.Errorf("run after the client closed: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("run did not return after the client closed")
	}
}

// connect runs hostplane-mcp's server over pipes with the environment env
// and connects an MCP client to it; done receives run's result. run serves
// until the client closes or the test ends. Its start (GET /openapi.json,
// the tools' generation: seconds under -race on a loaded machine) is timed
// here, not by the caller's budget: the client's initialize waits on the
// pipe until run serves. When run returns, both pipes are closed with its
// error, so a client waiting on them fails with it (before, a run that
// failed before serving left Connect blocked in its pipe write for good,
// past any context, and its error unseen).
func connect(t *testing.T, env map[string]string) (cs *mcp.ClientSession, done chan error) {
	t.Helper()
	runCtx, stop := context.WithCancel(context.Background())
	t.Cleanup(stop)
	srvIn, cliOut := io.Pipe()
	cliIn, srvOut := io.Pipe()
	done = make(chan error, 1)
	go func() {
		err := run(runCtx, func(k string) string { return env[k] }, srvIn, srvOut)
		_ = srvIn.CloseWithError(err)
		_ = srvOut.CloseWithError(err)
		done <- err
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "stdio-test"}, nil).Connect(ctx, &mcp.IOTransport{Reader: cliIn, Writer: cliOut}, nil)
	if err != nil {
		select {
		case runErr := <-done:
			t.Fatalf("connect: %v; run returned: %v", err, runErr)
		case <-time.After(10 * time.Second):
			t.Fatalf("connect: %v (run still serving)", err)
		}
	}
	return cs, done
}

// TestStdioBrandKey: against a 444host coordinator, the key exported as the
// 444host documentation says (H444_API_KEY, no HOSTPLANE_API_KEY) is the one
// the tools act with, and the tools carry 444host's names.
func TestStdioBrandKey(t *testing.T) {
	c := testcluster.New(t, 1, func(_ int, cfg *server.Config) {
		cfg.Brand, cfg.KeyPrefix, cfg.Webhooks.Brand = brand.H444, "", ""
	})
	_, key := c.NewAccount("h444-stdio@example.com")
	if !strings.HasPrefix(key, "h444_") {
		t.Fatalf("key %.9s…, want h444_…", key)
	}
	cs, _ := connect(t, map[string]string{"H444_API_KEY": key, "HOSTPLANE_API_URL": c.URL(0)})
	defer cs.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	names := framework.ToolNames(t, ctx, cs)
	if !slices.Contains(names, "list_vps") || slices.Contains(names, "list_servers") {
		t.Errorf("tools over stdio on 444host: %v", names)
	}
	r, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "get_account", Arguments: map[string]any{}})
	if err != nil || r.IsError || !strings.Contains(r.Content[0].(*mcp.TextContent).Text, "h444-stdio@example.com") {
		t.Fatalf("get_account with the key from H444_API_KEY: %v %+v", err, r)
	}
}

// TestAPIKeyVariables: HOSTPLANE_API_KEY first, then a brand's variable;
// two brand variables with different keys, or none, are refused naming them.
func TestAPIKeyVariables(t *testing.T) {
	for _, tc := range []struct {
		env       map[string]string
		key, fail string
	}{
		{map[string]string{"HOSTPLANE_API_KEY": "snc_a", "H444_API_KEY": "h444_b"}, "snc_a", ""},
		{map[string]string{"H444_API_KEY": " h444_b\n"}, "h444_b", ""},
		{map[string]string{"SUNUCU_API_KEY": "snc_c"}, "snc_c", ""},
		{map[string]string{"SUNUCU_API_KEY": "k", "H444_API_KEY": "k"}, "k", ""},
		{map[string]string{"SUNUCU_API_KEY": "snc_c", "H444_API_KEY": "h444_b"}, "", "SUNUCU_API_KEY and H444_API_KEY hold different keys"},
		{map[string]string{}, "", "export HOSTPLANE_API_KEY or SUNUCU_API_KEY or H444_API_KEY"},
	} {
		key, err := apiKey(func(k string) string { return tc.env[k] })
		if tc.fail != "" {
			if err == nil || !strings.Contains(err.Error(), tc.fail) {
				t.Errorf("%v: %q %v, want an error with %q", tc.env, key, err, tc.fail)
			}
			continue
		}
		if err != nil || key != tc.key {
			t.Errorf("%v: %q %v, want %q", tc.env, key, err, tc.key)
		}
	}
}

func TestStdioNeedsKey(t *testing.T) {
	err := run(context.Background(), func(string) string { return "" }, io.NopCloser(strings.NewReader("")), nopWriteCloser{})
	if err == nil || !strings.Contains(err.Error(), "HOSTPLANE_API_KEY") {
		t.Fatalf("without a key: %v", err)
	}
}

type nopWriteCloser struct{}

func (nopWriteCloser) Write(p []byte) (int, error) { return len(p), nil }
func (nopWriteCloser) Close() error                { return nil }
