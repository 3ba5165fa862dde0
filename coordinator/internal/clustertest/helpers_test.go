package clustertest

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/httpapi"
	"github.com/hostplane/hostplane/coordinator/internal/testcluster"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// leaderWait bounds how long a test waits for a leader where it needs one's
// index: an election can be under way at any moment on a loaded machine, and
// Leader's -1 then would index no node.
const leaderWait = 30 * time.Second

// waitAllAtLevel waits, up to 30 s a member, until every member of c has
// applied semantics level: one that has not yet still applies and ships
// usage as at the level before.
func waitAllAtLevel(t *testing.T, c *testcluster.Cluster, level uint16) {
	t.Helper()
	for i, nd := range c.Nodes {
		for deadline := time.Now().Add(30 * time.Second); nd.Server.Node.FSM.ClusterLevel() < level; time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("coordinator %d never applied semantics level %d", i, level)
			}
		}
	}
}

// newAPIClient calls /v1 through pkg/client, checking every response against
// the embedded openapi.json.
func newAPIClient(t *testing.T, base string) *framework.API {
	return framework.NewAPI(t, base, httpapi.OpenAPI)
}

// internalRig is a 3-coordinator cluster with an account and a key of it,
// for the tests of what a coordinator asks the leader (/internal/...).
type internalRig struct {
	c   *testcluster.Cluster
	acc api.Account
	key api.KeyCreated
	ld  int // the leader's index
}

// newInternalRig starts the cluster (skipped with -short) with an account
// of email and its key made by req.
func newInternalRig(t *testing.T, email string, req api.KeyCreateRequest) *internalRig {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	r := &internalRig{c: testcluster.New(t, 3)}
	r.acc, _ = r.c.NewAccount(email)
	r.c.Retry503(func() (err error) {
		r.key, err = r.c.Admin(r.c.WaitLeader(10*time.Second)).CreateKey(t.Context(), r.acc.ID, req)
		return err
	})
	r.ld = r.c.WaitLeader(leaderWait)
	return r
}

// post sends body (JSON) to path on coordinator node with the cluster token
// token ("" for none): the answer's status and body.
func (r *internalRig) post(t *testing.T, node int, path, token, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", r.c.URL(node)+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set(httpapi.HeaderClusterToken, token)
	}
	resp, b := framework.Fetch(t, nil, req)
	return resp.StatusCode, string(b)
}
