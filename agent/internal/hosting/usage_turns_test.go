package hosting

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestNodeUsageTakesTurns: when a request's budget runs out before every
// account was walked (a node with many or large sites), the next request
// starts with the accounts walked least recently, so that every account
// gets its figure in turn instead of the same first ones in the
// coordinator's (alphabetical) order every time and the others never.
// The walk here measures one site per request and then finds the budget
// spent (it waits for the request's context), as a slow disk would.
func TestNodeUsageTakesTurns(t *testing.T) {
	n := newRootedNode(t)
	users := []string{"ada", "bob", "carl"}
	for _, u := range users {
		if err := os.MkdirAll(filepath.Dir(n.L.Account(u)), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(n.L.Account(u), []byte(`{"username":"`+u+`"}`), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	walked := 0
	n.walk = func(ctx context.Context, _ string) (uint64, error) {
		if walked++; walked%2 == 0 {
			<-ctx.Done() // the budget is spent on this one
			return 0, ctx.Err()
		}
		return 4096, nil
	}
	got := map[string]bool{}
	for range len(users) {
		rep, err := n.Usage(context.Background(), users, 20*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		for u := range rep {
			got[u] = true
		}
	}
	if len(got) != len(users) {
		t.Fatalf("three requests, one account measured in each: %v measured, want all of %v", got, users)
	}
}
