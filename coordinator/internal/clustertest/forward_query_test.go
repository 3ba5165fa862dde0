package clustertest

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/testcluster"
)

// TestFollowerForwardsTheQueryAsSent: a query the leader refuses (it does not
// parse: a ';' separator, a bad '%' escape) is refused alike when sent to a
// follower, which forwards it. The follower's proxy re-encoded such a query
// before (httputil.ReverseProxy drops the pairs url.ParseQuery cannot read),
// so the leader saw "limit=1" or nothing at all and answered a 200 list, or
// a 201 creating a ticket with the option the client sent never applied,
// where the leader itself answered 400 invalid_query.
func TestFollowerForwardsTheQueryAsSent(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	c := testcluster.New(t, 3, testcluster.WithRateLimit(1_000_000))
	_, key := c.NewAccount("fwdq@example.com")
	hc := &http.Client{Timeout: 20 * time.Second}
	send := func(node int, method, target, body string) (int, string, string) {
		t.Helper()
		r, _ := http.NewRequest(method, c.URL(node)+target, strings.NewReader(body))
		r.Header.Set("Authorization", "Bearer "+key)
		r.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(r)
		if err != nil {
			t.Fatalf("%s %s on node %d: %v", method, target, node, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var e struct{ Code, Message string }
		_ = json.Unmarshal(b, &e)
		return resp.StatusCode, e.Code, e.Message
	}
	const ticket = `{"subject":"fwdq","message":"m"}`
	cases := []struct{ method, target string }{
		{"GET", "/v1/tickets?limit=1;page=2"},
		{"GET", "/v1/tickets?limit=1&%zz=1"},
		{"GET", "/v1/tickets?status=open;x=1"},
		{"POST", "/v1/tickets?priority=high;x=1"},
		{"POST", "/v1/tickets?priority=%zz"},
	}
	for round := 1; ; round++ {
		ld := c.WaitLeader(10 * time.Second)
		f := (ld + 1) % 3
		moved := false
		for _, tc := range cases {
			for _, node := range []int{ld, f} {
				status, code, msg := send(node, tc.method, tc.target, ticket)
				if status == 503 {
					moved = true
					continue
				}
				if status != 400 || code != "invalid_query" || !strings.Contains(msg, "malformed") {
					who := "the leader"
					if node == f {
						who = "a follower"
					}
					t.Errorf("%s %s sent to %s: %d %s %q, want 400 invalid_query (the query string is malformed)", tc.method, tc.target, who, status, code, msg)
				}
			}
		}
		if moved && round < 3 {
			t.Logf("round %d: leadership moved; again", round)
			continue
		}
		break
	}
	// None of the refused POSTs created a ticket, whichever node took it.
	var list struct {
		Data []json.RawMessage `json:"data"`
	}
	c.Retry503(func() error {
		var err error
		list.Data = nil
		r, _ := http.NewRequest("GET", c.URL(c.WaitLeader(10*time.Second))+"/v1/tickets", nil)
		r.Header.Set("Authorization", "Bearer "+key)
		resp, err := hc.Do(r)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		return json.NewDecoder(resp.Body).Decode(&list)
	})
	if len(list.Data) != 0 {
		t.Errorf("the refused POSTs created %d tickets", len(list.Data))
	}
}
