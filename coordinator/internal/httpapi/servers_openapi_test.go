package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/fsmtest"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// srvAPI is the webhook test harness (a single-node Raft member behind an
// httptest server) with fake server dependencies, and a client that checks
// every /v1 response against openapi.json.
type srvAPI struct {
	*whAPI
	doc *openapi3.T

	mu        sync.Mutex
	secrets   map[string][]byte
	kicks     int
	templates []string // nil: the node reported none
	stats     func(ctx context.Context, nodeID, vm string, stream bool, interval time.Duration, fn func(api.ServerStats) error) error
}

// embeddedDocValid is loadDoc's check of the embedded openapi.json, run once:
// loading and validating it took ≈ 1 s per test under -race.
var embeddedDocValid = sync.OnceValue(func() error {
	d, err := openapi3.NewLoader().LoadFromData(OpenAPI)
	if err != nil {
		return fmt.Errorf("document does not parse: %w", err)
	}
	if err := d.Validate(context.Background()); err != nil {
		return fmt.Errorf("not a valid OpenAPI 3 document: %w", err)
	}
	return nil
})

func newSrvAPI(t *testing.T) *srvAPI {
	t.Helper()
	return newSrvAPIWith(t, Config{NodeID: "n1"})
}

// newSrvAPIWith is newSrvAPI with the API's configuration cfg.
func newSrvAPIWith(t testing.TB, cfg Config) *srvAPI {
	t.Helper()
	s := &srvAPI{whAPI: newWHAPIWith(t, cfg), secrets: map[string][]byte{}, templates: []string{"debian-12", "ubuntu-24.04"}}
	s.a.SetServerDeps(&ServerDeps{
		ActionDeadline: time.Hour,
		PutSecret: func(id string, b []byte) {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.secrets[id] = append([]byte(nil), b...)
		},
		DropSecret: func(id string) {
			s.mu.Lock()
			defer s.mu.Unlock()
			delete(s.secrets, id)
		},
		Kick: func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.kicks++
		},
		Stats: func(ctx context.Context, nodeID, vm string, stream bool, interval time.Duration, fn func(api.ServerStats) error) error {
			s.mu.Lock()
			f := s.stats
			s.mu.Unlock()
			if f == nil {
				return ErrNodeOffline
			}
			return f(ctx, nodeID, vm, stream, interval, fn)
		},
		NodeTemplates: func(string) ([]string, bool) {
			s.mu.Lock()
			defer s.mu.Unlock()
			return s.templates, s.templates != nil
		},
	})
	// The embedded document, checked as loadDoc checks one (parses, valid
	// OpenAPI 3) once per test binary, and loaded once and shared (only read).
	if err := embeddedDocValid(); err != nil {
		t.Fatalf("the embedded openapi.json: %v", err)
	}
	doc, err := framework.LoadOpenAPI(OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	s.doc = doc
	// An enrolled node to place servers on.
	s.apply(fsm.CmdNodeCAInit, fsm.NodeCAInit{CertDER: []byte{1}, SealedKey: "v1.x", Fingerprint: "fp"})
	s.apply(fsm.CmdNodeTokenCreate, fsm.NodeTokenCreate{ID: "jt_1", Hash: "h1", ExpiresAt: time.Now().Add(time.Hour)})
	s.apply(fsm.CmdNodeEnrol, fsm.NodeEnrol{TokenID: "jt_1", TokenHash: "h1", NodeID: "hv-secret-node", CertSerial: "s1", CertNotAfter: time.Now().Add(24 * time.Hour)})
	return s
}

func (s *srvAPI) setStats(f func(ctx context.Context, nodeID, vm string, stream bool, interval time.Duration, fn func(api.ServerStats) error) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats = f
}

// runningSamples is a node's stats stream: a "running" sample each every
// until the stream's callback refuses one or its context ends.
func runningSamples(every time.Duration) func(ctx context.Context, _, _ string, _ bool, _ time.Duration, fn func(api.ServerStats) error) error {
	return func(ctx context.Context, _, _ string, _ bool, _ time.Duration, fn func(api.ServerStats) error) error {
		for {
			if err := fn(api.ServerStats{Time: time.Now().UTC(), State: "running"}); err != nil {
				return err
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(every):
			}
		}
	}
}

func (s *srvAPI) secret(id string) map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var m map[string]string
	_ = json.Unmarshal(s.secrets[id], &m)
	return m
}

// server places a provisioned (running) server for acc.
func (s *srvAPI) server(acc string) string {
	s.t.Helper()
	c := fsmtest.ServerCreate(acc, "hv-secret-node", time.Now())
	s.apply(fsm.CmdServerCreate, c)
	s.finish(c.Action.ID, true)
	return c.Server.ID
}

// newServerOwner is newSrvAPI with an account holding allServerScopes and
// one server of it (as server): the account, its key and the server's id.
func newServerOwner(t *testing.T) (s *srvAPI, acc, key, id string) {
	t.Helper()
	s = newSrvAPI(t)
	acc, key = s.account(allServerScopes...)
	return s, acc, key, s.server(acc)
}

// servers places n servers for acc (as server), oldest first, their ids
// of distinct milliseconds so the newest-first order of a list is known.
func (s *srvAPI) servers(acc string, n int) []string {
	s.t.Helper()
	var made []string
	for range n {
		made = append(made, s.server(acc))
		time.Sleep(2 * time.Millisecond) // distinct id timestamps
	}
	return made
}

func (s *srvAPI) finish(actionID string, ok bool) {
	s.t.Helper()
	s.apply(fsm.CmdActionFinish, fsm.ActionFinish{ID: actionID, Success: ok})
}

type reply struct {
	status int
	header http.Header
	body   []byte
	m      map[string]any
}

func (r reply) code() string { c, _ := r.m["code"].(string); return c }
func (r reply) msg() string  { c, _ := r.m["message"].(string); return c }

// call sends a request through pkg/client; the answer is checked against
// openapi.json (framework.ValidatingTransport).
func (s *srvAPI) call(key, method, path, body string, hdr ...string) reply {
	s.t.Helper()
	fr := s.api.Call(key, method, path, rawBody(body), headers(hdr))
	r := reply{status: fr.Status, header: fr.Header, body: fr.Body}
	_ = json.Unmarshal(fr.Body, &r.m)
	return r
}

// validate checks a response against the document: status documented, body
// matching the schema (skipBody for event streams, checked event by event).
func (s *srvAPI) validate(req *http.Request, body []byte, r reply, skipBody bool) {
	s.t.Helper()
	s.api.Transport.Check(req, body, r.status, r.header, r.body, skipBody)
}

// schema validates a JSON value against a named component schema.
func (s *srvAPI) schema(name string, raw []byte) error {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return err
	}
	return s.doc.Components.Schemas[name].Value.VisitJSON(v)
}

// TestOpenAPIServerRoutes: every server route is documented with its scope and
// a security requirement naming it (openapi_test.go covers the other tables).
func TestOpenAPIServerRoutes(t *testing.T) {
	doc := loadDoc(t, OpenAPI)
	a := &API{}
	var problems []string
	for _, rt := range a.serverRoutes() {
		p := strings.TrimPrefix(rt.Path, "/v1")
		item := doc.Paths.Find(p)
		if item == nil || item.GetOperation(rt.Method) == nil {
			problems = append(problems, "not documented: "+rt.Method+" "+p)
			continue
		}
		op := item.GetOperation(rt.Method)
		if sc, _ := op.Extensions["x-scope"].(string); sc != rt.Scope {
			problems = append(problems, "scope of "+rt.Method+" "+p+": "+sc+" vs "+rt.Scope)
		}
		// Either scope serves (x-alt-scope too): the security requirements
		// are the alternatives a generated client reads, one per scheme and
		// scope.
		if sc, _ := op.Extensions["x-alt-scope"].(string); sc != rt.AltScope {
			problems = append(problems, "alt scope of "+rt.Method+" "+p+": "+sc+" vs "+rt.AltScope)
		}
		if got, want := securityOf(op), securityWant(rt); got != want {
			problems = append(problems, "security of "+rt.Method+" "+p+": "+got+", want "+want)
		}
		hasIdem := false
		for _, prm := range op.Parameters {
			if prm.Ref == "#/components/parameters/IdempotencyKey" {
				hasIdem = true
			}
		}
		if hasIdem != rt.Idempotent {
			problems = append(problems, "Idempotency-Key documented differently for "+rt.Method+" "+p)
		}
	}
	// The PTR routes are served and documented, both behind servers:write.
	if item := doc.Paths.Find("/servers/{id}/ips/{ip}/ptr"); item == nil || item.Put == nil || item.Delete == nil {
		problems = append(problems, "ptr routes not documented")
	}
	sort.Strings(problems)
	for _, p := range problems {
		t.Error(p)
	}
}

// securityOf is op's security requirements as "scheme:scope" in order.
func securityOf(op *openapi3.Operation) string {
	if op.Security == nil {
		return "<none>"
	}
	var out []string
	for _, req := range *op.Security {
		for scheme, scopes := range req {
			out = append(out, scheme+":"+strings.Join(scopes, ","))
		}
	}
	return strings.Join(out, " ")
}

// securityWant is what rt's operation documents: its scope through either
// scheme, then its alternative scope the same way (none for a public route).
func securityWant(rt Route) string {
	if rt.Scope == "" {
		return ""
	}
	want := []string{"bearerAuth:" + rt.Scope, "apiKeyHeader:" + rt.Scope}
	if rt.AltScope != "" {
		want = append(want, "bearerAuth:"+rt.AltScope, "apiKeyHeader:"+rt.AltScope)
	}
	return strings.Join(want, " ")
}
