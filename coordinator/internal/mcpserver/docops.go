package mcpserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/hostplane/hostplane/internal/openapidoc"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/client"
)

// OperationsFromDoc reads the operations from an OpenAPI document alone, for
// a client that has the document but not the route table (hostplane-mcp):
// the scope from x-scope, Idempotent from an Idempotency-Key header
// parameter, SpendsMoney and Quote from x-spends-money and x-quote.
func OperationsFromDoc(doc []byte) ([]Operation, error) {
	d, err := openapidoc.Load(doc)
	if err != nil {
		return nil, fmt.Errorf("openapi: %w", err)
	}
	prefix := ""
	if len(d.Servers) > 0 {
		prefix = strings.TrimSuffix(d.Servers[0].URL, "/")
	}
	var ops []Operation
	for path, item := range d.Paths.Map() {
		for method, o := range item.Operations() {
			op := Operation{Method: method, Path: prefix + path}
			op.Scope, _ = o.Extensions["x-scope"].(string)
			op.AltScope, _ = o.Extensions["x-alt-scope"].(string)
			op.SpendsMoney, _ = o.Extensions["x-spends-money"].(bool)
			op.Quote, _ = o.Extensions["x-quote"].(string)
			for _, list := range []openapi3.Parameters{item.Parameters, o.Parameters} {
				for _, p := range list {
					if p.Value != nil && p.Value.In == "header" && strings.EqualFold(p.Value.Name, "Idempotency-Key") {
						op.Idempotent = true
					}
				}
			}
			ops = append(ops, op)
		}
	}
	sort.Slice(ops, func(i, j int) bool { return ops[i].Key() < ops[j].Key() })
	return ops, nil
}

// ClientDispatcher sends each call over the network with pkg/client (the
// key is the client's; Who is not used).
type ClientDispatcher struct {
	Client *client.Client
}

// Dispatch implements Dispatcher.
func (cd ClientDispatcher) Dispatch(ctx context.Context, c *Call, _ Who) (*Response, error) {
	var body any
	if c.Body != nil {
		body = bytes.NewReader(c.Body)
	}
	var buf bytes.Buffer
	resp, err := cd.Client.Do(ctx, c.Method, c.Path, body, &buf, c.Header)
	if resp == nil {
		return nil, err
	}
	var ae *api.Error
	if errors.As(err, &ae) {
		raw, _ := json.Marshal(ae)
		return &Response{Status: resp.StatusCode, Header: resp.Header, Body: raw}, nil
	}
	if err != nil {
		return nil, err
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: buf.Bytes()}, nil
}
