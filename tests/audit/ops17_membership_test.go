package audit

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// ticketScript is a customer's script writing tickets through all three
// coordinators, following the README's retry policy: a 503 with Retry-After
// is sent again after it with the same Idempotency-Key; a refused connection
// goes to the next coordinator; a coordinator that keeps answering 503 for
// 10 s is left for the next one too. Every other answer is kept as odd.
type ticketScript struct {
	r    *rig
	stop atomic.Bool
	wg   sync.WaitGroup

	mu        sync.Mutex
	acked     map[string]string // Idempotency-Key → ticket id
	odd       []string
	refused   int
	answer503 map[string]int // code → count
	moved     int            // left a coordinator that answered 503 for 10 s
	longest   time.Duration  // the longest a ticket took, retries included
}

func startTicketScript(r *rig, workers int) *ticketScript {
	s := &ticketScript{r: r, acked: map[string]string{}, answer503: map[string]int{}}
	for w := range workers {
		s.wg.Go(func() { s.work(w) })
	}
	return s
}

func (s *ticketScript) work(w int) {
	for i := 0; !s.stop.Load(); i++ {
		time.Sleep(20 * time.Millisecond) // a script, not a flood: the machine is shared
		key := fmt.Sprintf("ops17m-%d-%d", w, i)
		body := api.TicketCreateRequest{Subject: key, Message: "written during a membership change", Department: "technical", Priority: "low"}
		home := w % 3
		start := time.Now()
		since503 := time.Time{}
		for attempt := 0; ; attempt++ {
			if time.Since(start) > 90*time.Second {
				s.note("%s: no answer but 503s or refusals for 90 s", key)
				return
			}
			rep, err := s.r.apis[home].Try(s.r.keyA, "POST", "/v1/tickets", body, map[string]string{"Idempotency-Key": key})
			if err != nil {
				s.mu.Lock()
				s.refused++
				s.mu.Unlock()
				home = (home + 1) % 3
				time.Sleep(100 * time.Millisecond)
				continue
			}
			if rep.Status == 201 {
				var tk api.Ticket
				if err := json.Unmarshal(rep.Body, &tk); err != nil || tk.ID == "" {
					s.note("%s: %v", rep, err)
					break
				}
				s.mu.Lock()
				s.acked[key] = tk.ID
				s.longest = max(s.longest, time.Since(start))
				s.mu.Unlock()
				break
			}
			ra := rep.Header.Get("Retry-After")
			if rep.Status != 503 || ra == "" {
				s.note("%s (key %s, coordinator %d)", rep, key, home)
				break
			}
			s.mu.Lock()
			s.answer503[rep.Code()]++
			s.mu.Unlock()
			if since503.IsZero() {
				since503 = time.Now()
			} else if time.Since(since503) > 10*time.Second {
				s.mu.Lock()
				s.moved++
				s.mu.Unlock()
				home, since503 = (home+1)%3, time.Time{}
				continue
			}
			secs, _ := strconv.Atoi(ra)
			time.Sleep(min(time.Duration(max(secs, 1))*time.Second, 2*time.Second))
		}
	}
}

func (s *ticketScript) note(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.odd = append(s.odd, fmt.Sprintf(format, args...))
}

func (s *ticketScript) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.acked)
}

// TestOps17MembershipWhileCustomersWrite: the operator removes a follower,
// starts it again empty (--bootstrap=false) and joins it back, then does the
// same to the leader itself, while a customer's script writes tickets through
// all three coordinators. The script sees only 503s with Retry-After and
// refused connections (the node stopped), no acknowledged ticket is lost,
// each fresh member catches up, and `cluster status` on every member says
// at each step who the voters and the leader are.
func TestOps17MembershipWhileCustomersWrite(t *testing.T) {
	r := lightRig(t, "ops17mb")
	c := r.c
	s := startTicketScript(r, 3)
	defer func() { s.stop.Store(true); s.wg.Wait() }()
	waitTickets := func(n int) {
		t.Helper()
		framework.WaitFor(t, fmt.Sprintf("%d more tickets", n), 60*time.Second, 100*time.Millisecond, func() bool { return s.count() >= n })
	}
	waitTickets(10)

	// statusAll: `cluster status` on every running member but skip says
	// the voters are want and names one leader among them, the same on
	// every member; it returns that leader. The members are read one after
	// another, and an election (the rig's Raft timeout, on a loaded
	// machine) can move the leader between two reads, or leave one member
	// knowing none for a moment: they are read again, for up to 30 s,
	// until they agree.
	statusAll := func(step string, want []string, skip string) *framework.CoordinatorProcess {
		t.Helper()
		var said []string
		leader, agree := "", false
		for end := time.Now().Add(30 * time.Second); !agree && time.Now().Before(end); {
			if said != nil {
				time.Sleep(200 * time.Millisecond)
			}
			said, leader, agree = []string{}, "", true
			for _, p := range c.Nodes {
				if !p.Alive() || p.ID == skip {
					continue
				}
				st := clusterStatus(t, p)
				got := voterIDs(st)
				said = append(said, fmt.Sprintf("%s says voters %v, leader %q", p.ID, got, st.LeaderID))
				if !slices.Equal(got, want) || !slices.Contains(want, st.LeaderID) || leader != "" && st.LeaderID != leader {
					agree = false
				}
				leader = st.LeaderID
			}
		}
		for _, p := range c.Nodes {
			if p.Alive() {
				t.Logf("%s: status on %s: %s", step, p.ID, ctl(t, p, "cluster", "status"))
			}
		}
		if !agree {
			t.Fatalf("%s: %s; want voters %v and one of them the leader on every member (for 30 s)", step, strings.Join(said, "; "), want)
		}
		return c.Nodes[slices.IndexFunc(c.Nodes, func(q *framework.CoordinatorProcess) bool { return q.ID == leader })]
	}
	// replace removes p (through via), starts it again empty and joins it back.
	replace := func(p, via *framework.CoordinatorProcess) {
		t.Helper()
		ids := []string{}
		for _, q := range c.Nodes {
			if q != p {
				ids = append(ids, q.ID)
			}
		}
		slices.Sort(ids)
		// A removal the leader could not complete (it lost the leadership:
		// an election, as the rig's Raft timeout makes on a loaded
		// machine) answers 503 no_leader, and the README says to run the
		// same command again once there is a leader: the operator does, for
		// up to 30 s. Should the first run have removed p all the same, p
		// says so in its status.
		var run ctlRun
		for end := time.Now().Add(30 * time.Second); ; {
			run = ctl(t, via, "cluster", "remove", p.ID)
			t.Logf("remove %s through %s: %s", p.ID, via.ID, run)
			if run.code == 0 || !strings.Contains(run.stderr, "(no_leader)") || time.Now().After(end) {
				break
			}
			time.Sleep(time.Second)
			if st := clusterStatus(t, p); slices.ContainsFunc(st.Warnings, func(w string) bool { return strings.Contains(w, "no member of the cluster (it was removed)") }) {
				run.code = 0
				break
			}
		}
		if run.code != 0 {
			t.Fatalf("remove %s: %s", p.ID, run)
		}
		// The members left agree on the voters and on one of them leading.
		ld := statusAll("after removing "+p.ID, ids, p.ID)
		// The removed one, still running, says it is out.
		if st := clusterStatus(t, p); !slices.ContainsFunc(st.Warnings, func(w string) bool { return strings.Contains(w, "no member of the cluster (it was removed)") }) {
			t.Errorf("cluster status on %s, removed and still running: %+v; want a warning that it is no member", p.ID, st)
		}
		n := s.count()
		waitTickets(n + 5)

		p.Stop()
		if err := os.RemoveAll(p.DataDir); err != nil {
			t.Fatal(err)
		}
		for i, a := range p.Args {
			if strings.HasPrefix(a, "--bootstrap=") {
				p.Args[i] = "--bootstrap=false"
			}
		}
		if err := p.Start(); err != nil {
			t.Fatal(err)
		}
		framework.WaitFor(t, p.ID+"'s admin socket", 30*time.Second, 200*time.Millisecond, func() bool {
			_, err := os.Stat(p.AdminSocket())
			return err == nil
		})
		t.Logf("%s started empty: %s", p.ID, ctl(t, p, "cluster", "status"))
		if st := clusterStatus(t, p); !slices.ContainsFunc(st.Warnings, func(w string) bool { return strings.Contains(w, "in no cluster yet") }) {
			t.Errorf("cluster status on %s, started empty: %+v; want a warning that it is in no cluster yet", p.ID, st)
		}
		if via == p {
			// The operator runs the join where they ran the removal: the
			// fresh coordinator, which can do nothing, says so at once.
			start := time.Now()
			run := ctl(t, p, "cluster", "join", p.ID, p.RaftAddr)
			took := time.Since(start)
			t.Logf("join %s through itself, after %s: %s", p.ID, took.Round(time.Millisecond), run)
			if run.code != 1 || !strings.Contains(run.stderr, "no member of the cluster") || !strings.Contains(run.stderr, "run the command on a member") || took > 5*time.Second {
				t.Errorf("join %s through itself, after %s: %s; want at once exit 1 saying it is no member and to run it on a member", p.ID, took.Round(time.Millisecond), run)
			}
			via = ld
		}
		var join ctlRun
		for end := time.Now().Add(30 * time.Second); ; {
			if join = ctl(t, via, "cluster", "join", p.ID, p.RaftAddr); join.code == 0 || time.Now().After(end) {
				break
			}
			t.Logf("join %s: %s", p.ID, join)
			time.Sleep(time.Second)
		}
		if join.code != 0 {
			t.Fatalf("join %s back: %s", p.ID, join)
		}
		all := []string{}
		for _, q := range c.Nodes {
			all = append(all, q.ID)
		}
		slices.Sort(all)
		if err := p.WaitReady(30 * time.Second); err != nil {
			t.Fatal(err)
		}
		ld = c.Nodes[c.WaitLeader(20*time.Second)]
		commit := clusterStatus(t, ld).CommitIndex
		framework.WaitFor(t, fmt.Sprintf("%s to catch up to index %d", p.ID, commit), 30*time.Second, 200*time.Millisecond, func() bool {
			return clusterStatus(t, p).AppliedIndex >= commit
		})
		statusAll("after joining "+p.ID+" back", all, "")
		n = s.count()
		waitTickets(n + 5)
	}

	ld := c.WaitLeader(20 * time.Second)
	// A follower, removed through the leader.
	replace(c.Nodes[(ld+1)%3], c.Nodes[ld])
	// The leader, removed through itself.
	ld = c.WaitLeader(20 * time.Second)
	replace(c.Nodes[ld], c.Nodes[ld])

	s.stop.Store(true)
	s.wg.Wait()
	t.Logf("script: %d tickets acknowledged, %d refused connections, 503s %v, left a coordinator answering 503 %d times, longest ticket %s",
		len(s.acked), s.refused, s.answer503, s.moved, s.longest.Round(time.Millisecond))
	for _, o := range s.odd {
		t.Errorf("the script got an undocumented answer: %s", o)
	}
	ldi := c.WaitLeader(20 * time.Second)
	for key, id := range s.acked {
		if rep := r.call(ldi, r.keyA, "GET", "/v1/tickets/"+id, nil, nil); rep.Status != 200 {
			t.Errorf("acknowledged ticket %s (%s) after the membership changes: %s", id, key, rep)
		}
	}
	// Each fresh member serves them from its own state.
	last := ""
	for _, id := range s.acked {
		last = id
	}
	for i := range c.Nodes {
		framework.WaitFor(t, c.Nodes[i].ID+" to hold the tickets", 20*time.Second, 200*time.Millisecond, func() bool {
			return r.apis[i].Call(r.keyA, "GET", "/v1/tickets/"+last+"?consistency=stale", nil, nil).Status == 200
		})
	}
}
