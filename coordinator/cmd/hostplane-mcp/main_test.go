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
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/hostplane/hostplane/coordinator/internal/httpapi"
	"github.com/hostplane/hostplane/coordinator/internal/mcpserver"
	"github.com/hostplane/hostplane/coordinator/internal/testcluster"
	"github.com/hostplane/hostplane/pkg/api"
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

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srvIn, cliOut := io.Pipe()
	cliIn, srvOut := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- run(ctx, func(k string) string { return env[k] }, srvIn, srvOut) }()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "stdio-test"}, nil).Connect(ctx, &mcp.IOTransport{Reader: cliIn, Writer: cliOut}, nil)
	if err != nil {
		t.Fatal(err)
	}

	ops, err := mcpserver.OperationsFromDoc(httpapi.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, err := range cs.Tools(ctx, nil) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != len(ops) {
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
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	restBody, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
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

func TestStdioNeedsKey(t *testing.T) {
	err := run(context.Background(), func(string) string { return "" }, io.NopCloser(strings.NewReader("")), nopWriteCloser{})
	if err == nil || !strings.Contains(err.Error(), "HOSTPLANE_API_KEY") {
		t.Fatalf("without a key: %v", err)
	}
}

type nopWriteCloser struct{}

func (nopWriteCloser) Write(p []byte) (int, error) { return len(p), nil }
func (nopWriteCloser) Close() error                { return nil }
