package audit

import (
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
)

// TestGaps16AdminAtAFollowerWhileTheLeaderIsPaused: hostplanectl run on a
// follower's admin socket while the leader hangs (SIGSTOP: its connections
// stay open) answers within a few seconds, as a customer's request at a
// follower does since probe11, not after the follower's 30 s wait for the
// paused leader. A read and a keyed wallet credit are run; each either
// succeeds (the follower already forwarded to the new leader) or fails
// (exit 1) with one error line naming leader_unreachable, then a line saying
// what happened and that the command may be run again. Run again with the
// same key once answered, the credit is made once.
func TestGaps16AdminAtAFollowerWhileTheLeaderIsPaused(t *testing.T) {
	r := lightRig(t, "gaps16adm")
	ld, f := r.leaderAndFollower()
	fp := r.c.Nodes[f]
	balance := func() int64 {
		t.Helper()
		show := ctl(t, fp, "--json", "account", "show", r.accA.ID)
		var acc api.Account
		if err := json.Unmarshal([]byte(show.stdout), &acc); err != nil {
			t.Fatalf("%s: %v", show, err)
		}
		return acc.BalanceUsdCents
	}
	before := balance()

	const bound = 8 * time.Second // an election (~1 s here), the 2 s grace, slack for a loaded machine
	credit := []string{"wallet", "credit", r.accA.ID, "--amount", "5", "--idempotency-key", "gaps16-paused"}
	cmds := [][]string{{"account", "show", r.accA.ID}, credit}
	runs := make([]ctlRun, len(cmds))
	took := make([]time.Duration, len(cmds))
	ldp := r.c.Nodes[ld]
	ldp.Pause()
	resumed := sync.OnceFunc(ldp.Resume)
	defer resumed()
	var wg sync.WaitGroup
	for i, args := range cmds {
		wg.Go(func() {
			start := time.Now()
			runs[i] = ctl(t, fp, args...)
			took[i] = time.Since(start)
		})
	}
	wg.Wait()
	resumed()

	for i, run := range runs {
		t.Logf("with the leader paused, after %s: %s", took[i].Round(time.Millisecond), run)
		if took[i] > bound {
			t.Errorf("%s\nanswered after %s at a follower with the leader paused; want within %s", run, took[i].Round(time.Millisecond), bound)
		}
		if run.code == 0 {
			continue
		}
		lines := strings.Split(strings.TrimSuffix(run.stderr, "\n"), "\n")
		if run.code != 1 || len(lines) != 2 || !strings.HasPrefix(lines[0], "error: 503 ") || !strings.Contains(lines[0], "(leader_unreachable)") {
			t.Errorf("%s\nwant exit 1 and the 503 leader_unreachable on one line, then what to do", run)
			continue
		}
		if !strings.Contains(lines[1], "did not answer") || !strings.Contains(lines[1], "run the command again") {
			t.Errorf("%s\nthe second line does not say the leader did not answer and that the command may be run again", run)
		}
		if cmds[i][0] == "wallet" && !strings.Contains(lines[1], "may have been applied") {
			t.Errorf("%s\na write's error does not say it may have been applied", run)
		}
	}

	// As the operator would: the credit again, with its key, until answered.
	var again ctlRun
	for end := time.Now().Add(30 * time.Second); ; {
		if again = ctl(t, fp, credit...); again.code == 0 || time.Now().After(end) {
			break
		}
		time.Sleep(time.Second)
	}
	if again.code != 0 {
		t.Fatalf("the credit run again after the pause: %s", again)
	}
	if got := balance() - before; got != 500 {
		t.Errorf("balance after one keyed credit of $5 sent twice: %d cents more; want 500", got)
	}
}
