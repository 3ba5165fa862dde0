package audit

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
)

// TestProbe7MCPOneMessagePerPost: /mcp reads a POST as /v1 reads one, one
// JSON value. A tools/call followed by more data (garbage, or a second call
// after it, with or without a newline between) is a 400 saying so and runs
// nothing, through the leader and a follower, in a session; the session
// still serves a well-formed call after them. Before, the first call ran (a
// ticket opened) and the rest was dropped without a word, where /v1 answers
// the same body a 400 ("data after the JSON object").
func TestProbe7MCPOneMessagePerPost(t *testing.T) {
	r := sharedLightRig(t, "light")
	f := r.follower()

	call := func(subject string) string {
		b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 7, "method": "tools/call",
			"params": map[string]any{"name": "create_ticket", "arguments": map[string]any{"body": map[string]any{"subject": subject, "message": "probe7"}}}})
		return string(b)
	}
	for _, i := range []int{0, f} {
		m := &mcpSession{t: t, endpoint: r.c.URL(i) + "/mcp", token: r.keyA}
		m.initialize()
		for _, tc := range []struct{ what, body string }{
			{"garbage after a call", call(fmt.Sprintf("garbage-%d", i)) + " x"},
			{"a second call after a call", call(fmt.Sprintf("first-%d", i)) + call(fmt.Sprintf("second-%d", i))},
			{"a second call after a newline", call(fmt.Sprintf("nl-first-%d", i)) + "\n" + call(fmt.Sprintf("nl-second-%d", i))},
		} {
			st, _, body := rawMCP(t, "POST", m.endpoint, r.keyA, m.session, tc.body, nil, 15*time.Second)
			if st != http.StatusBadRequest || !strings.Contains(body, "after") {
				t.Errorf("coordinator %d, %s: %d %.300s; want a 400 saying there is data after the message", i, tc.what, st, body)
			}
		}
		// The session still serves a well-formed call.
		st, _, body := rawMCP(t, "POST", m.endpoint, r.keyA, m.session, call(fmt.Sprintf("well-formed-%d", i)), nil, 15*time.Second)
		if st != 200 || !strings.Contains(body, `"hostplane/status":201`) {
			t.Errorf("coordinator %d, a well-formed call after them: %d %.300s", i, st, body)
		}
	}
	var l struct {
		Data []api.Ticket `json:"data"`
	}
	r.get(t, 0, r.keyA, "/v1/tickets?limit=200", &l)
	var subjects []string
	for _, tk := range l.Data {
		subjects = append(subjects, tk.Subject)
	}
	slices.Sort(subjects)
	if want := []string{"well-formed-0", fmt.Sprintf("well-formed-%d", f)}; !slices.Equal(subjects, want) {
		t.Errorf("tickets after the calls: %q; want only the well-formed calls' %q", subjects, want)
	}
}
