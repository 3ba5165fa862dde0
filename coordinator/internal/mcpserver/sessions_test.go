package mcpserver

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
)

// TestSessionCapBookkeeping: sessionCap counts an account's sessions from
// their initialize; past the cap an initialize displaces the session used
// least recently of those with no request running (a request's start and
// end are uses), or is refused when all have one; sessions of other accounts
// and requests naming another account's session change nothing; a session
// dropped (DELETE, ended) or whose initialize failed frees its place.
func TestSessionCapBookkeeping(t *testing.T) {
	c := newSessionCap(3)
	ended := map[string]int{}
	admit := func(account, id string) (bool, error) {
		t.Helper()
		added, displaced, err := c.admit(account, id, func() { ended[id]++ })
		if displaced != nil {
			displaced()
		}
		return added, err
	}
	open := func(account, id string) {
		t.Helper()
		if added, err := admit(account, id); !added || err != nil {
			t.Fatalf("admit %s/%s: added %v, %v", account, id, added, err)
		}
		c.initialized(id, true)
	}
	open("A", "a1")
	open("A", "a2")
	open("A", "a3")
	open("B", "b1")
	if n := c.count("A"); n != 3 {
		t.Fatalf("A holds %d; want 3", n)
	}
	// A second initialize on a counted session adds nothing.
	if added, err := admit("A", "a1"); added || err != nil {
		t.Errorf("a second initialize of a1: added %v, %v; want neither", added, err)
	}
	// a1 used, then B uses a2's id (another account): a2 stays the least
	// recently used of A.
	c.begin("a1", "A")()
	c.begin("a2", "B")()
	c.begin("a3", "A")()
	open("A", "a4")
	if ended["a2"] != 1 || len(ended) != 1 || c.count("A") != 3 || c.count("B") != 1 {
		t.Fatalf("a 4th session of A (cap 3): ended %v, A holds %d, B %d; want a2 ended, 3 and 1", ended, c.count("A"), c.count("B"))
	}
	// A request running keeps its session, however old its last use.
	doneA1 := c.begin("a1", "A")
	c.begin("a3", "A")()
	c.begin("a4", "A")()
	open("A", "a5")
	if ended["a1"] != 0 || ended["a3"] != 1 {
		t.Fatalf("a 5th session while a1 has a request running: ended %v; want a3 (a1's request runs)", ended)
	}
	// All three with a request running: refused, nothing ended.
	doneA4 := c.begin("a4", "A")
	doneA5 := c.begin("a5", "A")
	added, err := admit("A", "a6")
	var we *jsonrpc.Error
	if added || !errors.As(err, &we) || we.Code != -32000 || !strings.Contains(we.Message, "3 MCP sessions") {
		t.Fatalf("a session over the cap with all running: added %v, %v; want the JSON-RPC error -32000 naming the cap", added, err)
	}
	var data struct {
		Code       string `json:"code"`
		RetryAfter int    `json:"retry_after"`
	}
	if json.Unmarshal(we.Data, &data) != nil || data.Code != "too_many_sessions" || data.RetryAfter <= 0 {
		t.Errorf("the refusal's data %s; want code too_many_sessions and retry_after", we.Data)
	}
	if c.count("A") != 3 || len(ended) != 2 {
		t.Errorf("after the refusal: A holds %d, ended %v; want 3, nothing more ended", c.count("A"), ended)
	}
	// A session being initialized counts as running: it is not displaced.
	doneA1()
	if added, err := admit("A", "a7"); !added || err != nil || ended["a1"] != 1 {
		t.Fatalf("a session over the cap once a1's request ended: added %v, %v, ended %v; want a1 ended", added, err, ended)
	}
	doneA4()
	doneA5()
	// a7, still initializing, is not displaced: a4, the least recently
	// used of the idle two, is.
	if added, err := admit("A", "a8"); !added || err != nil || ended["a7"] != 0 || ended["a4"] != 1 {
		t.Fatalf("a session over the cap while a7 initializes: added %v, %v, ended %v; want a4 ended", added, err, ended)
	}
	c.initialized("a8", false) // its initialize failed: its place is free again
	c.initialized("a7", true)
	if c.count("A") != 2 {
		t.Fatalf("A holds %d after a8's initialize failed; want 2 (a5, a7)", c.count("A"))
	}
	before := len(ended)
	// DELETE or end of a session: its place is free, no one displaced.
	c.drop("a7")
	open("A", "a9")
	open("A", "a10")
	if len(ended) != before || c.count("A") != 3 {
		t.Errorf("after a7's drop and two new sessions: ended %v (had %d), A holds %d; want nothing more ended, 3", ended, before, c.count("A"))
	}
	c.drop("b1")
	if c.count("B") != 0 {
		t.Errorf("B holds %d after its only session dropped; want 0", c.count("B"))
	}
}
