package robustness

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/client"
	"github.com/hostplane/hostplane/tests/framework"
)

func TestMain(m *testing.M) { os.Exit(framework.Main(m)) }

// coordinatorBin is the hostplane-coordinator binary the tests run: this
// tree's, or HOSTPLANE_COORDINATOR_BIN (to run the same tests against another
// build, e.g. one from before linearizable reads; it must know the flags the
// framework passes).
func coordinatorBin(t *testing.T) string {
	if bin := os.Getenv("HOSTPLANE_COORDINATOR_BIN"); bin != "" {
		return bin
	}
	return framework.Coordinator(t)
}

// cluster is three coordinator processes (tests/framework), an account with a
// key, and (newCluster) one webhook whose description is the register under
// test.
type cluster struct {
	t       *testing.T
	pc      *framework.ProcessCluster
	procs   []*framework.CoordinatorProcess
	key     string
	account string
	webhook string
	// apis are pkg/client clients of each coordinator whose every /v1
	// answer is validated against its /openapi.json (tests/framework).
	apis []*framework.API
}

// clusterOptions say what startCluster starts besides the coordinators.
type clusterOptions struct {
	agents bool     // agent session listeners (200 ms pings, 2 s grace)
	scopes []string // the key's scopes (none: the defaults)
	// place changes the processes' options (a PartitionNet's Place).
	place func(*framework.ProcessOptions)
}

// startCluster starts three coordinators (framework.RaftTimeout) and creates
// an account with a key; with -short it skips the test.
func startCluster(t *testing.T, name string, o clusterOptions) *cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("runs three coordinator processes")
	}
	po := framework.ProcessOptions{
		Bin: coordinatorBin(t), NodePrefix: "r", RateLimit: 100000000, RaftTimeout: framework.RaftTimeout,
	}
	if o.agents {
		po.Agents, po.AgentPing, po.AgentGrace = true, 200*time.Millisecond, 2*time.Second
	}
	if o.place != nil {
		o.place(&po)
	}
	pc := framework.NewProcessCluster(t, po)
	c := &cluster{t: t, pc: pc, procs: pc.Nodes}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	acc, key, err := pc.NewAccount(ctx, name+"@example.com", o.scopes...)
	if err != nil {
		t.Fatal(err)
	}
	c.key, c.account = key, acc.ID
	doc := fetchOpenAPI(t, c.procs[0].URL())
	for _, p := range c.procs {
		c.apis = append(c.apis, framework.NewAPI(t, p.URL(), doc))
	}
	return c
}

// fetchOpenAPI is the /openapi.json a coordinator serves.
func fetchOpenAPI(t *testing.T, base string) []byte {
	t.Helper()
	resp, err := httpc.Get(base + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	doc, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s/openapi.json: %d %v", base, resp.StatusCode, err)
	}
	return doc
}

// api is the validating pkg/client client of coordinator p with the
// cluster's key.
func (c *cluster) api(p *framework.CoordinatorProcess) *client.Client {
	return c.apis[c.index(p)].Client(c.key)
}

// index is p's index in c.procs.
func (c *cluster) index(p *framework.CoordinatorProcess) int {
	for i, q := range c.procs {
		if q == p {
			return i
		}
	}
	panic("no coordinator " + p.ID)
}

// newCluster starts three coordinators (framework.RaftTimeout) and creates the
// register.
func newCluster(t *testing.T, name string) *cluster {
	t.Helper()
	return newClusterWith(t, name, clusterOptions{})
}

// newClusterWith is newCluster started with o.
func newClusterWith(t *testing.T, name string, o clusterOptions) *cluster {
	t.Helper()
	c := startCluster(t, name, o)
	c.newRegister(t)
	return c
}

// newRegister creates a register, "0", and makes it the one c reads and
// writes (t: the test or subtest running).
func (c *cluster) newRegister(t *testing.T) {
	t.Helper()
	pc := c.pc
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ld, err := pc.LeaderIndex(20 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	wh, err := pc.Client(ld, c.key).CreateWebhook(ctx, api.WebhookCreateRequest{
		URL: "https://93.184.216.34/hostplane-robustness", Events: []string{string(api.EventServerCreated)}, Description: "0",
	}, "")
	if err != nil {
		t.Fatal(err)
	}
	c.webhook = wh.ID
	// Every coordinator answers a linearizable read of the register (its key
	// and the leader's API address have reached it) before the test begins.
	for _, p := range c.procs {
		deadline := time.Now().Add(20 * time.Second)
		for {
			if v, st, err := c.read(context.Background(), p, ""); err == nil && st == 200 && v == "0" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never served the register", p.ID)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

func (c *cluster) waitReady(p *framework.CoordinatorProcess, d time.Duration) {
	c.t.Helper()
	if err := p.WaitReady(d); err != nil {
		c.t.Fatal(err)
	}
}

// pause SIGSTOPs p and returns what SIGCONTs it. Only the first call of
// resume resumes p: a test defers it, so that p runs again whatever happens,
// and calls it where p should run again.
func pause(p *framework.CoordinatorProcess) (resume func()) {
	p.Pause()
	return sync.OnceFunc(p.Resume)
}

// leader returns the index of the coordinator that says it leads, skipping the
// excluded ones (paused).
func (c *cluster) leader(exclude map[int]bool, d time.Duration) int {
	c.t.Helper()
	i, err := c.pc.LeaderIndexSkipping(exclude, d)
	if err != nil {
		c.t.Fatalf("no leader among the running coordinators after %s", d)
	}
	return i
}

// leaderOrNone is leader for goroutines other than the test's: -1 if none.
func (c *cluster) leaderOrNone(d time.Duration) int {
	i, _ := c.pc.LeaderIndexSkipping(nil, d)
	return i
}

var httpc = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}}

// read is GET /v1/webhooks/:id through p: the description, the status.
// query is appended as is ("consistency=stale").
func (c *cluster) read(ctx context.Context, p *framework.CoordinatorProcess, query string) (string, int, error) {
	return c.readWith(ctx, p, c.key, query)
}

// readWith is read with another API key.
func (c *cluster) readWith(ctx context.Context, p *framework.CoordinatorProcess, key, query string) (string, int, error) {
	u := p.URL() + "/v1/webhooks/" + c.webhook
	if query != "" {
		u += "?" + query
	}
	req, _ := http.NewRequestWithContext(ctx, "GET", u, nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := httpc.Do(req)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", 0, err
	}
	if resp.StatusCode != 200 {
		return "", resp.StatusCode, nil
	}
	var w api.Webhook
	if err := json.Unmarshal(body, &w); err != nil {
		return "", 0, fmt.Errorf("GET webhook: %v: %s", err, body)
	}
	return w.Description, 200, nil
}

// write is PATCH /v1/webhooks/:id {description} through p: the status.
func (c *cluster) write(ctx context.Context, p *framework.CoordinatorProcess, value string) (int, error) {
	body, _ := json.Marshal(api.WebhookUpdateRequest{Description: &value})
	req, _ := http.NewRequestWithContext(ctx, "PATCH", p.URL()+"/v1/webhooks/"+c.webhook, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+c.key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := httpc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 400 && resp.StatusCode < 500 {
		return resp.StatusCode, fmt.Errorf("PATCH webhook: %d %s", resp.StatusCode, strings.TrimSpace(string(msg)))
	}
	return resp.StatusCode, nil
}
