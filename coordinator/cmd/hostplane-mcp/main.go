// Command hostplane-mcp serves the hostplane API to a local MCP client over
// stdio (as an MCP client's "command" server). It reads the API key from
// HOSTPLANE_API_KEY (or, when that is unset, from the brand's variable the
// brands' documentation names: SUNUCU_API_KEY or H444_API_KEY) and the API's
// base URL from HOSTPLANE_API_URL (default
// http://127.0.0.1:8420; use https:// for a remote coordinator, with
// HOSTPLANE_CA_FILE for a private CA), fetches that API's /openapi.json and
// serves one tool per operation, generated the same way as the coordinator's
// /mcp, each call sent to the API with pkg/client. The key's scopes, rate
// limit and idempotency apply as on any REST call.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/hostplane/hostplane/coordinator/internal/mcpserver"
	"github.com/hostplane/hostplane/pkg/brand"
	"github.com/hostplane/hostplane/pkg/client"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Getenv, os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "hostplane-mcp:", err)
		os.Exit(1)
	}
}

// run serves MCP on in/out until the client closes it or ctx ends.
func run(ctx context.Context, getenv func(string) string, in io.ReadCloser, out io.WriteCloser) error {
	key, err := apiKey(getenv)
	if err != nil {
		return err
	}
	base := strings.TrimSuffix(getenv("HOSTPLANE_API_URL"), "/")
	if base == "" {
		base = "http://127.0.0.1:8420"
	}
	if !strings.HasPrefix(base, "https://") && !strings.HasPrefix(base, "http://") {
		return fmt.Errorf("HOSTPLANE_API_URL %q: want an http:// or https:// URL", base)
	}
	c := client.New(base, key)
	if ca := getenv("HOSTPLANE_CA_FILE"); ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return fmt.Errorf("HOSTPLANE_CA_FILE: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("HOSTPLANE_CA_FILE %s: no PEM certificate", ca)
		}
		c.HTTP = &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
			Proxy: http.ProxyFromEnvironment, TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	} else {
		c.HTTP.Timeout = 60 * time.Second
	}
	var doc strings.Builder
	fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := c.Do(fctx, "GET", "/openapi.json", nil, &doc, nil); err != nil {
		return fmt.Errorf("GET %s/openapi.json: %w", base, err)
	}
	ops, err := mcpserver.OperationsFromDoc([]byte(doc.String()))
	if err != nil {
		return err
	}
	tools, err := mcpserver.Generate([]byte(doc.String()), ops)
	if err != nil {
		return err
	}
	srv := mcpserver.NewServer(tools, mcpserver.ClientDispatcher{Client: c}, mcpserver.Options{})
	return srv.Run(ctx, &mcp.IOTransport{Reader: in, Writer: out})
}

// apiKey is the key in HOSTPLANE_API_KEY or, when that is unset, in a
// brand's own variable (SUNUCU_API_KEY, H444_API_KEY: what each brand's
// documentation tells its customers to export). Two brand variables naming
// different keys are refused rather than one picked silently.
func apiKey(getenv func(string) string) (string, error) {
	if k := strings.TrimSpace(getenv("HOSTPLANE_API_KEY")); k != "" {
		return k, nil
	}
	var key, from string
	vars := []string{"HOSTPLANE_API_KEY"}
	for _, n := range brand.Names() {
		v := brand.MustGet(n).KeyEnv
		vars = append(vars, v)
		k := strings.TrimSpace(getenv(v))
		if k == "" {
			continue
		}
		if key != "" && k != key {
			return "", fmt.Errorf("%s and %s hold different keys: set one of them (or HOSTPLANE_API_KEY)", from, v)
		}
		key, from = k, v
	}
	if key == "" {
		return "", fmt.Errorf("no API key: export %s with the API key the tools should act with", strings.Join(vars, " or "))
	}
	return key, nil
}
