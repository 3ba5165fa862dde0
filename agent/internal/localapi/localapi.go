// Package localapi serves the agent's local HTTP API on a unix socket for
// `hostplanectl node …`.
package localapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/hostplane/hostplane/agent/internal/ops"
	"github.com/hostplane/hostplane/agent/internal/stats"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/validate"
)

// maxBody bounds request bodies; the largest legitimate one (32 SSH keys) is far smaller.
const maxBody = 1 << 20

// Server is the local API.
type Server struct {
	m     *ops.Manager
	stats *stats.Collector
	log   *slog.Logger
	mux   *http.ServeMux
}

// noStats answers stats requests on a node without the kvm role.
var noStats = &api.NodeError{Code: api.NodeErrUnsupported, Message: "this node does not have the kvm role: no guest stats"}

// New builds the handler; st is nil on a node without the kvm role.
func New(m *ops.Manager, st *stats.Collector, log *slog.Logger) *Server {
	s := &Server{m: m, stats: st, log: log, mux: http.NewServeMux()}
	s.routes()
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Serve listens on the unix socket path until ctx ends.
func (s *Server) Serve(ctx context.Context, path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("local api socket %s: %w", path, err)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return fmt.Errorf("local api socket %s: another process is listening on it", path)
	}
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("local api socket %s: %w", path, err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("local api socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return fmt.Errorf("local api socket %s: %w", path, err)
	}
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	err = srv.Serve(ln)
	<-done
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

func (s *Server) routes() {
	h := s.mux.HandleFunc
	h("/", func(w http.ResponseWriter, r *http.Request) {
		s.reply(w, nil, &api.NodeError{Code: api.NodeErrNotFound, Message: "no such endpoint: " + r.Method + " " + r.URL.Path})
	})
	h("GET /v1/healthz", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, map[string]string{"status": "ok"}) })
	h("GET /v1/templates", func(w http.ResponseWriter, r *http.Request) {
		ts, err := s.m.Templates()
		s.reply(w, ts, err)
	})
	h("POST /v1/templates", createHandler(s, s.m.ImportTemplate))
	h("POST /v1/templates/{name}/remove", opHandler(s, s.m.RemoveTemplate))
	h("GET /v1/vms", func(w http.ResponseWriter, r *http.Request) {
		vms, err := s.m.VMs(r.Context())
		s.reply(w, vms, err)
	})
	h("POST /v1/vms", createHandler(s, s.m.Provision))
	h("GET /v1/vms/{name}", getHandler(s, s.m.VM))
	h("POST /v1/vms/{name}/start", opHandler(s, s.m.Start))
	h("POST /v1/vms/{name}/terminate", opHandler(s, s.m.Terminate))
	h("POST /v1/vms/{name}/stop", opHandler(s, s.m.Stop))
	h("POST /v1/vms/{name}/reboot", opHandler(s, s.m.Reboot))
	h("POST /v1/vms/{name}/reinstall", opHandler(s, s.m.Reinstall))
	h("POST /v1/vms/{name}/password-reset", opHandler(s, s.m.ResetPassword))
	h("POST /v1/vms/{name}/snapshots", opHandler(s, s.m.CreateSnapshot))
	h("GET /v1/vms/{name}/snapshots", getHandler(s, s.m.Snapshots))
	h("POST /v1/vms/{name}/snapshots/{snap}/delete", snapHandler(s, s.m.DeleteSnapshot))
	h("POST /v1/vms/{name}/snapshots/{snap}/revert", snapHandler(s, s.m.RevertSnapshot))
	// Stats cover the agent's own VMs only; other domains on the host are sampled
	// by the same bulk call but not shown.
	h("GET /v1/stats", func(w http.ResponseWriter, r *http.Request) {
		if s.stats == nil {
			s.reply(w, nil, noStats)
			return
		}
		names, err := s.m.VMNames()
		if err != nil {
			s.reply(w, nil, err)
			return
		}
		st := s.stats.Current(r.Context(), "")
		for n := range st.VMs {
			if !names[n] {
				delete(st.VMs, n)
			}
		}
		s.reply(w, st, nil)
	})
	h("GET /v1/stats/{vm}", func(w http.ResponseWriter, r *http.Request) {
		vm := r.PathValue("vm")
		if err := validate.Name("vm", vm); err != nil {
			s.reply(w, nil, err)
			return
		}
		if _, err := s.m.VM(r.Context(), vm); err != nil {
			s.reply(w, nil, err)
			return
		}
		if s.stats == nil {
			s.reply(w, nil, noStats)
			return
		}
		st := s.stats.Current(r.Context(), vm)
		if len(st.VMs) == 0 {
			s.reply(w, nil, &api.NodeError{Code: api.NodeErrNotFound, Message: "no stats for vm " + vm + " (unknown, or not sampled yet)"})
			return
		}
		s.reply(w, st, nil)
	})
	h("GET /v1/operations/{id}", func(w http.ResponseWriter, r *http.Request) {
		op, err := s.m.Operation(r.PathValue("id"))
		s.reply(w, op, err)
	})
}

// getHandler replies with what fn returns for the path's {name}.
func getHandler[T any](s *Server, fn func(context.Context, string) (T, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v, err := fn(r.Context(), r.PathValue("name"))
		s.reply(w, v, err)
	}
}

// createHandler decodes the body into a T and runs fn (no path parameter).
func createHandler[T any](s *Server, fn func(context.Context, T) (*api.NodeOperation, error)) http.HandlerFunc {
	return opHandler(s, func(ctx context.Context, _ string, req T) (*api.NodeOperation, error) { return fn(ctx, req) })
}

// opHandler decodes the body into a T and runs fn on the path's {name}.
func opHandler[T any](s *Server, fn func(context.Context, string, T) (*api.NodeOperation, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req T
		if s.decode(w, r, &req) {
			op, err := fn(r.Context(), r.PathValue("name"), req)
			s.reply(w, op, err)
		}
	}
}

func snapHandler(s *Server, fn func(context.Context, string, string, api.NodeOpRequest) (*api.NodeOperation, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req api.NodeOpRequest
		if s.decode(w, r, &req) {
			op, err := fn(r.Context(), r.PathValue("name"), r.PathValue("snap"), req)
			s.reply(w, op, err)
		}
	}
}

// Decode reads exactly one JSON object with only known fields into v.
func Decode(body io.Reader, v any) error {
	b, err := io.ReadAll(io.LimitReader(body, maxBody+1))
	if err != nil {
		return fmt.Errorf("%w: reading body: %v", validate.ErrInvalid, err)
	}
	if len(b) > maxBody {
		return fmt.Errorf("%w: body larger than %d bytes", validate.ErrInvalid, maxBody)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: body: %v", validate.ErrInvalid, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: body: trailing data after the JSON object", validate.ErrInvalid)
	}
	return nil
}

func (s *Server) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := Decode(r.Body, v); err != nil {
		s.reply(w, nil, err)
		return false
	}
	return true
}

// StatusFor maps an error code to an HTTP status.
func StatusFor(code string) int {
	switch code {
	case api.NodeErrInvalid, api.NodeErrChecksumFailed:
		return http.StatusBadRequest
	case api.NodeErrNotFound:
		return http.StatusNotFound
	case api.NodeErrAlreadyExists, api.NodeErrConflict, api.NodeErrBusy:
		return http.StatusConflict
	case api.NodeErrNoSpace:
		return http.StatusInsufficientStorage
	case api.NodeErrUnsupported:
		return http.StatusUnprocessableEntity
	case api.NodeErrUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

func (s *Server) reply(w http.ResponseWriter, v any, err error) {
	if err != nil {
		ne := ops.Classify(err)
		if ne.Code == api.NodeErrInternal {
			s.log.Error("request failed", "err", err)
		}
		writeJSON(w, StatusFor(ne.Code), api.NodeErrorResponse{Error: *ne})
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
