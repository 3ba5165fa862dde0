package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"
)

// TestReadyWhileAWriteIsOnItsWayToTheFSM: /readyz on a member whose FSM is
// an instant behind the commit index (an entry committed, still on its way
// to the FSM) answers 200 once the FSM has it, not 503 "catching up" (seen
// in a clean-clone CI: clustertest TestHealthReadyMetrics got applied_index
// 17 = commit_index 17, fsm_applied_index 16); a member whose FSM stays
// behind is still catching up.
func TestReadyWhileAWriteIsOnItsWayToTheFSM(t *testing.T) {
	w := newWHAPI(t)
	ready := func() (int, string) {
		resp, err := http.Get(w.srv.URL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b struct{ Status string }
		_ = json.NewDecoder(resp.Body).Decode(&b)
		return resp.StatusCode, b.Status
	}
	if code, st := ready(); code != 200 {
		t.Fatalf("/readyz before: %d %q", code, st)
	}
	// The FSM holds after the next entry; the one after it is committed
	// and waits for the FSM. finish releases it and waits for both entries'
	// answers, so the FSM is idle before stallFSM sets its hook again.
	behind := func() (release, finish func()) {
		stalled, release := stallFSM(w)
		done := make(chan error, 2)
		go func() { _, err := w.a.Apply(context.Background(), accountEnv()); done <- err }()
		<-stalled
		// Straight to Raft: the batcher holds later proposals until the
		// one in flight is answered.
		data, err := accountEnv().Encode()
		if err != nil {
			t.Fatal(err)
		}
		fut := w.node.Raft.Apply(data, 10*time.Second)
		go func() { done <- fut.Error() }()
		for deadline := time.Now().Add(5 * time.Second); w.node.Raft.CommitIndex() <= w.node.FSM.AppliedIndex(); time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				release()
				t.Fatal("the second entry was not committed within 5 s")
			}
		}
		return release, func() {
			release()
			for range 2 {
				if err := <-done; err != nil {
					t.Errorf("apply: %v", err)
				}
			}
		}
	}

	release, finish := behind()
	time.AfterFunc(100*time.Millisecond, release)
	if code, st := ready(); code != 200 {
		t.Errorf("/readyz with an entry on its way to the FSM (released after 100 ms): %d %q, want 200", code, st)
	}
	finish()

	_, finish = behind()
	defer finish()
	if code, st := ready(); code != 503 || st != "catching up" {
		t.Errorf("/readyz with the FSM held behind the commit index: %d %q, want 503 \"catching up\"", code, st)
	}
}
