package clustertest

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/server"
	"github.com/hostplane/hostplane/coordinator/internal/testcluster"
	"github.com/hostplane/hostplane/internal/testpki"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// clusterTLSConns reads hostplane_cluster_tls_connections_total from node i.
func clusterTLSConns(t *testing.T, c *testcluster.Cluster, i int) int {
	t.Helper()
	return counter(t, c, i, "hostplane_cluster_tls_connections_total")
}

// metrics is node i's /metrics page (its metrics listener).
func metrics(tb testing.TB, c *testcluster.Cluster, i int) []byte {
	tb.Helper()
	resp, err := http.Get(c.MetricsURL(i) + "/metrics")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return raw
}

// counter reads the Prometheus counter name from node i's /metrics.
func counter(t *testing.T, c *testcluster.Cluster, i int, name string) int {
	t.Helper()
	return metricsCounter(t, c.MetricsURL(i), name)
}

// metricsCounter reads the unlabelled counter name from the /metrics of a
// metrics listener (base: its URL without the path).
func metricsCounter(t testing.TB, base, name string) int {
	t.Helper()
	v, ok := framework.Metrics(t, base)[name]
	if !ok {
		t.Fatalf("%s/metrics lacks %s", base, name)
	}
	return int(v)
}

// TestForwardingOverMutualTLS: with the cluster CA and no cluster secret,
// followers forward /v1 and admin calls to the leader over mutual TLS on its API
// port, reusing their connections; a plain-HTTP caller gets no cluster trust and
// a certificate of another CA no handshake. Then the same Idempotency-Key sent
// at once to two coordinators, across a leader change, creates one ticket.
func TestForwardingOverMutualTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	dir := t.TempDir()
	c := testcluster.New(t, 3, testcluster.WithRateLimit(1_000_000), withClusterTLS(t, dir, 3), func(_ int, cfg *server.Config) {
		cfg.ClusterSecret = "" // only the certificates authenticate coordinators
	})
	_, key := c.NewAccount("tls@example.com")

	// Forwarded writes and reads, on kept-alive TLS connections. The count of
	// connections is read from one leader: on a loaded machine an election
	// may happen meanwhile (a write then gets 503 no_leader, which clients
	// retry), and the round is run again on the new leader.
	var ld, f1, f2 int
	for round := 1; ; round++ {
		ld = c.WaitLeader(leaderWait)
		f1, f2 = (ld+1)%3, (ld+2)%3
		before := clusterTLSConns(t, c, ld)
		for n := 0; n < 30; n++ {
			cl := newAPIClient(t, c.URL([]int{f1, f2}[n%2]))
			deadline := time.Now().Add(20 * time.Second)
			for {
				ctx, r := framework.Capture(t.Context())
				_, err := cl.Client(key).CreateTicket(ctx, api.TicketCreateRequest{Subject: fmt.Sprint("tls ", round, " ", n), Message: "m"}, "")
				if err == nil && r.Status == 201 {
					break
				}
				if r.Status != 503 || time.Now().After(deadline) {
					t.Fatalf("write via follower over mTLS: %d %s (%v)", r.Status, r.Body, err)
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
		if c.Leader() != ld && round < 3 {
			t.Logf("round %d: the leader changed during the writes; again on the new leader", round)
			continue
		}
		if grew := clusterTLSConns(t, c, ld) - before; grew > 4 {
			t.Errorf("30 forwarded requests from 2 followers opened %d TLS connections to the leader: not reused", grew)
		}
		break
	}
	// Admin writes through a follower's socket go the same way.
	c.Retry503(func() error {
		_, err := c.Admin(f1).CreateAccount(t.Context(), api.AccountCreateRequest{Email: "viafollower-tls@example.com"})
		return err
	})
	// Plain HTTP earns no cluster trust: the internal admin mount is refused.
	resp, err := http.Post(c.URL(ld)+"/internal/admin/accounts", "application/json", strings.NewReader(`{"email":"x@example.com"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("plain-HTTP internal admin call: %d, want 401", resp.StatusCode)
	}
	// A certificate from another CA gets no TLS session on the API port.
	evil := writeLeaf(t, dir, "evil", testpki.NewCA(t, "evil-ca", 24*time.Hour))
	cert, err := tls.LoadX509KeyPair(evil[0], evil[1])
	if err != nil {
		t.Fatal(err)
	}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", c.Nodes[ld].Cfg.APIAddr,
		&tls.Config{Certificates: []tls.Certificate{cert}, InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})
	if err == nil {
		_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
		_, _ = io.WriteString(conn, "GET /internal/admin/cluster/status HTTP/1.1\r\nHost: x\r\n\r\n")
		_, err = conn.Read(make([]byte, 1))
		conn.Close()
	}
	if err == nil {
		t.Fatal("a foreign-CA certificate got a TLS session on the API port")
	}

	// The same Idempotency-Key at once to both followers while the leader is
	// killed: every key ends with exactly one ticket.
	const keys = 16
	client := &http.Client{Timeout: 15 * time.Second}
	send := func(node int, idem, subject string) error {
		deadline := time.Now().Add(40 * time.Second)
		for {
			req, _ := http.NewRequest("POST", c.URL(node)+"/v1/tickets", strings.NewReader(`{"subject":"`+subject+`","message":"m"}`))
			req.Header.Set("Authorization", "Bearer "+key)
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Idempotency-Key", idem)
			resp, err := client.Do(req)
			status := 0
			if err == nil {
				status = resp.StatusCode
				resp.Body.Close()
			}
			switch {
			case status == 201:
				return nil
			case status == 409 || status == 503 || status == 0:
				// in flight elsewhere, no leader, or the connection broke: retry
			default:
				return fmt.Errorf("%s on node %d: %d", idem, node, status)
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s on node %d: still %d (%v) after 40 s", idem, node, status, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2*keys)
	for k := 0; k < keys; k++ {
		idem, subject := fmt.Sprintf("once-%d", k), fmt.Sprintf("once %d", k)
		for _, node := range []int{f1, f2} {
			wg.Add(1)
			go func() { defer wg.Done(); errs <- send(node, idem, subject) }()
		}
		if k == keys/2 {
			go c.Kill(ld)
		}
		time.Sleep(10 * time.Millisecond)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if c.Running(ld) {
		t.Fatal("the leader was not killed")
	}
	var list struct {
		Data []api.Ticket `json:"data"`
	}
	c.Retry503(func() error {
		cl, err := c.Client(f1, key).Tickets(t.Context(), 1, 200)
		if err == nil {
			list.Data = cl.Data
		}
		return err
	})
	count := map[string]int{}
	for _, tk := range list.Data {
		count[tk.Subject]++
	}
	for k := 0; k < keys; k++ {
		if n := count[fmt.Sprintf("once %d", k)]; n != 1 {
			raw, _ := json.Marshal(count)
			t.Errorf("Idempotency-Key once-%d created %d tickets (%s)", k, n, raw)
		}
	}
}
