package httpapi

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/store"
)

// TestDomainReplayWhoseClientWentAway: while the first send of a keyed
// order waits for the registry, the key is sent again and that client goes
// away; then the registry registers the domain well within the first
// send's wait. The first send, and the key sent again once the domain is
// active, answer the same. At level 15 the gone send closed the window at
// once (202, marked decided). At level 14 a close leaves no mark, and a
// send once the domain is active answers an end that early by the clocks
// (201): the gone send does not close the window before its wait has run
// out, so the end decides the key's answer, 201 at both (idem61's level-14
// case, answered 201 by the replay where the first send said 202).
func TestDomainReplayWhoseClientWentAway(t *testing.T) {
	for _, level := range []uint16{fsm.LevelDomainAnswer, fsm.LevelDomainAnswerDecided} {
		t.Run(fmt.Sprintf("level%d", level), func(t *testing.T) { domainReplayWhoseClientWentAway(t, level) })
	}
}

func domainReplayWhoseClientWentAway(t *testing.T, level uint16) {
	s, gate, kicks, deps, key := gatedDomainAPI(t, level)
	body := `{"name":"gone.test",` + testContact + `}`
	order := func() reply {
		return s.call(key, "POST", "/v1/domains", body, "Idempotency-Key", "k-gone")
	}
	gate.shut()
	defer gate.open()
	ch := make(chan reply, 1)
	go func() { ch <- order() }()
	firstSendWaits(t, ch, kicks)
	// The same key from a client that hangs up once its send waits too.
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "POST", s.srv.URL+"/v1/domains", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", "k-gone")
	gone := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			err = fmt.Errorf("answered %s", resp.Status)
		}
		gone <- err
	}()
	select {
	case <-kicks:
	case err := <-gone:
		t.Fatalf("the second send ended before it waited: %v", err)
	}
	cancel()
	<-gone
	// The gone send sees its context ended within a poll (25 ms); from
	// level 15 it closes the window then: wait for that close to be applied
	// before the registry may end the operation (on a loaded machine a
	// fixed pause let the end win, review62 R4). At level 14 it must not
	// close it: after the same pause the window is still open.
	var id string
	_ = s.node.FSM.Read(func(r store.ReadTx) error { id = r.RegDomainNameTaken("gone.test"); return nil })
	op := func() *store.RegDomainOp {
		var d store.RegDomain
		if err := s.node.FSM.Read(func(r store.ReadTx) (err error) { d, err = r.RegDomainByID(id); return }); err != nil {
			t.Fatal(err)
		}
		if d.Op == nil {
			t.Fatalf("level %d: the registration's operation ended with the registry shut", level)
		}
		return d.Op
	}
	if level >= fsm.LevelDomainAnswerDecided {
		for end := time.Now().Add(10 * time.Second); op().Answer != nil; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(end) {
				t.Fatalf("level %d: the gone send's close of the answer window not applied after 10 s", level)
			}
		}
	} else {
		time.Sleep(300 * time.Millisecond)
		if op().Answer == nil {
			t.Fatalf("level %d: the gone send closed the answer window at once; want it open until its wait ran out", level)
		}
	}
	gate.open()
	first := <-ch
	if first.status/100 != 2 || first.m["id"] != id {
		t.Fatalf("level %d, the first send after a send of its key went away: %d %s; want the domain", level, first.status, first.body)
	}
	registered(t, s, id, true, deps.Wait)
	replay := order()
	if replay.status != first.status || !bytes.Equal(replay.body, first.body) || replay.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("level %d: the first send answered %d %s; the key sent again once the domain was active %d %s; want the same", level, first.status, first.body, replay.status, replay.body)
	}
	want := http.StatusCreated // the end decided it
	if level >= fsm.LevelDomainAnswerDecided {
		want = http.StatusAccepted // the gone send's close decided it
	}
	if first.status != want {
		t.Fatalf("level %d: the key answered %d %s; want %d", level, first.status, first.body, want)
	}
}
