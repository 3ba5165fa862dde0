package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
)

// NodeClient talks to a hostplane agent's local unix-socket API.
type NodeClient struct {
	socket string
	http   *http.Client
}

// NodeUnreachableError is returned when the agent's socket cannot be reached.
type NodeUnreachableError struct {
	Socket string
	Err    error
}

func (e *NodeUnreachableError) Error() string {
	return fmt.Sprintf("agent not reachable at %s: %v", e.Socket, e.Err)
}

// Unwrap returns the dial error.
func (e *NodeUnreachableError) Unwrap() error { return e.Err }

// NodeNew returns a client for the agent listening on socket.
func NodeNew(socket string) *NodeClient {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		MaxIdleConns: 4,
	}
	return &NodeClient{socket: socket, http: &http.Client{Transport: tr}}
}

// Close releases idle connections.
func (c *NodeClient) Close() { c.http.CloseIdleConnections() }

func (c *NodeClient) do(ctx context.Context, method, path string, in, out any) error {
	if err := checkPath(method, path); err != nil {
		return err
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://agent/"+api.NodeAPIVersion+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var oe *net.OpError
		if errors.As(err, &oe) && oe.Op == "dial" {
			return &NodeUnreachableError{Socket: c.socket, Err: err}
		}
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		var e api.NodeErrorResponse
		if json.Unmarshal(data, &e) == nil && e.Error.Code != "" {
			return &e.Error
		}
		// Not the agent's error (a proxy's page, a panic's text): quoted, so
		// it stays on one line, its newlines and controls escaped.
		return fmt.Errorf("%s %s: HTTP %d: %q", method, path, resp.StatusCode, bytes.TrimSpace(data))
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: decode: %w", method, path, err)
		}
	}
	return nil
}

// op posts an operation; a failed operation is returned along with its *api.NodeError.
func (c *NodeClient) op(ctx context.Context, path string, in any) (*api.NodeOperation, error) {
	var op api.NodeOperation
	if err := c.do(ctx, http.MethodPost, path, in, &op); err != nil {
		return nil, err
	}
	if op.State == api.NodeOpFailed && op.Error != nil {
		return &op, op.Error
	}
	return &op, nil
}

// NodeNewOpID returns a random operation id.
func NodeNewOpID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("op-%x-%x", time.Now().Unix(), b)
}

// Templates lists templates.
func (c *NodeClient) Templates(ctx context.Context) ([]api.NodeTemplate, error) {
	var out []api.NodeTemplate
	err := c.do(ctx, http.MethodGet, "/templates", nil, &out)
	return out, err
}

// ImportTemplate imports a template.
func (c *NodeClient) ImportTemplate(ctx context.Context, req api.NodeTemplateImportRequest) (*api.NodeOperation, error) {
	return c.op(ctx, "/templates", req)
}

// RemoveTemplate removes a template.
func (c *NodeClient) RemoveTemplate(ctx context.Context, name, opID string) (*api.NodeOperation, error) {
	return c.op(ctx, "/templates/"+seg("name", name)+"/remove", api.NodeOpRequest{OpID: opID})
}

// VMs lists VMs.
func (c *NodeClient) VMs(ctx context.Context) ([]api.NodeVM, error) {
	var out []api.NodeVM
	err := c.do(ctx, http.MethodGet, "/vms", nil, &out)
	return out, err
}

// VM returns one VM.
func (c *NodeClient) VM(ctx context.Context, name string) (*api.NodeVM, error) {
	var out api.NodeVM
	if err := c.do(ctx, http.MethodGet, "/vms/"+seg("name", name), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Provision creates and starts a VM.
func (c *NodeClient) Provision(ctx context.Context, req api.NodeProvisionRequest) (*api.NodeOperation, error) {
	return c.op(ctx, "/vms", req)
}

func nodeVMPath(name, action string) string { return "/vms/" + seg("name", name) + "/" + action }

// Start starts a VM.
func (c *NodeClient) Start(ctx context.Context, name, opID string) (*api.NodeOperation, error) {
	return c.op(ctx, nodeVMPath(name, "start"), api.NodeOpRequest{OpID: opID})
}

// Stop stops a VM (ACPI, then forced after the grace).
func (c *NodeClient) Stop(ctx context.Context, name string, req api.NodeStopRequest) (*api.NodeOperation, error) {
	return c.op(ctx, nodeVMPath(name, "stop"), req)
}

// Reboot reboots a VM.
func (c *NodeClient) Reboot(ctx context.Context, name string, req api.NodeStopRequest) (*api.NodeOperation, error) {
	return c.op(ctx, nodeVMPath(name, "reboot"), req)
}

// Reinstall reinstalls a VM from a template.
func (c *NodeClient) Reinstall(ctx context.Context, name string, req api.NodeReinstallRequest) (*api.NodeOperation, error) {
	return c.op(ctx, nodeVMPath(name, "reinstall"), req)
}

// Terminate destroys a VM and its volumes.
func (c *NodeClient) Terminate(ctx context.Context, name, opID string) (*api.NodeOperation, error) {
	return c.op(ctx, nodeVMPath(name, "terminate"), api.NodeOpRequest{OpID: opID})
}

// ResetPassword sets a password through the guest agent.
func (c *NodeClient) ResetPassword(ctx context.Context, name string, req api.NodePasswordResetRequest) (*api.NodeOperation, error) {
	return c.op(ctx, nodeVMPath(name, "password-reset"), req)
}

// Snapshots lists a VM's snapshots.
func (c *NodeClient) Snapshots(ctx context.Context, vm string) ([]api.NodeSnapshot, error) {
	var out []api.NodeSnapshot
	err := c.do(ctx, http.MethodGet, nodeVMPath(vm, "snapshots"), nil, &out)
	return out, err
}

// CreateSnapshot creates a snapshot.
func (c *NodeClient) CreateSnapshot(ctx context.Context, vm string, req api.NodeSnapshotCreateRequest) (*api.NodeOperation, error) {
	return c.op(ctx, nodeVMPath(vm, "snapshots"), req)
}

// DeleteSnapshot deletes a snapshot.
func (c *NodeClient) DeleteSnapshot(ctx context.Context, vm, snap, opID string) (*api.NodeOperation, error) {
	return c.op(ctx, nodeVMPath(vm, "snapshots/"+seg("snap", snap)+"/delete"), api.NodeOpRequest{OpID: opID})
}

// RevertSnapshot reverts to a snapshot.
func (c *NodeClient) RevertSnapshot(ctx context.Context, vm, snap, opID string) (*api.NodeOperation, error) {
	return c.op(ctx, nodeVMPath(vm, "snapshots/"+seg("snap", snap)+"/revert"), api.NodeOpRequest{OpID: opID})
}

// Stats returns host stats and every VM's ring (only vm's when vm is set).
func (c *NodeClient) Stats(ctx context.Context, vm string) (*api.NodeStats, error) {
	p := "/stats"
	if vm != "" {
		p += "/" + seg("vm", vm)
	}
	var out api.NodeStats
	if err := c.do(ctx, http.MethodGet, p, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Operation returns a journaled operation.
func (c *NodeClient) Operation(ctx context.Context, id string) (*api.NodeOperation, error) {
	var out api.NodeOperation
	if err := c.do(ctx, http.MethodGet, "/operations/"+seg("id", id), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Healthy reports whether the agent answers.
func (c *NodeClient) Healthy(ctx context.Context) error {
	return c.do(ctx, http.MethodGet, "/healthz", nil, nil)
}
