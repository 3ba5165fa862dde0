package eppd

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hostplane/hostplane/internal/eppxml"
	bolt "go.etcd.io/bbolt"
)

// fault is what injection does to one command.
type fault struct {
	failCode   int
	dropBefore bool
	dropAfter  bool
	delay      time.Duration
}

// takeFault consumes the failure injection that applies to the next
// command, of verb.
func (s *Server) takeFault(verb string) fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := &s.faults
	var out fault
	if f.delay.take(verb) {
		out.delay = f.delayBy
	}
	switch {
	case f.fail.take(verb):
		out.failCode = f.failCode
	case f.dropBefore.take(verb):
		out.dropBefore = true
	case f.dropAfter.take(verb):
		out.dropAfter = true
	}
	if out != (fault{}) {
		s.stats.Injected++
	}
	return out
}

// Verbs are the command names faults can be limited to.
var Verbs = []string{"domain:check", "domain:info", "domain:create", "domain:renew", "domain:transfer", "domain:update",
	"domain:delete", "contact:check", "contact:info", "contact:create", "contact:update", "contact:delete", "host:check", "host:create", "poll"}

// verbOf names a command for Verbs ("" for login, logout).
func verbOf(c *eppxml.Command) string {
	obj := func(domain bool) string {
		if domain {
			return "domain:"
		}
		return "contact:"
	}
	switch {
	case c.Check != nil && c.Check.Host != nil:
		return "host:check"
	case c.Create != nil && c.Create.Host != nil:
		return "host:create"
	case c.Check != nil:
		return obj(c.Check.Domain != nil) + "check"
	case c.Info != nil:
		return obj(c.Info.Domain != nil) + "info"
	case c.Create != nil:
		return obj(c.Create.Domain != nil) + "create"
	case c.Renew != nil:
		return "domain:renew"
	case c.Transfer != nil:
		return "domain:transfer"
	case c.Update != nil:
		return obj(c.Update.Domain != nil) + "update"
	case c.Delete != nil:
		return obj(c.Delete.Domain != nil) + "delete"
	case c.Poll != nil:
		return "poll"
	}
	return ""
}

// Admin is the failure injection and inspection endpoint (loopback only,
// no authentication). Every change answers the new state as JSON.
//
//	GET  /healthz                      200 once serving
//	GET  /stats                        counters (Stats) and the pending faults
//	POST /fail?n=N&code=2400           answer the next N commands (after login) with code, not applied
//	POST /drop?n=N&when=before|after   close the connection on the next N commands: before applying
//	                                   them, or after applying them without answering
//	POST /delay?n=N&d=2s               delay the next N commands' answers by d
//	                                   (each of fail, drop, delay takes &verb=domain:update to count
//	                                   only commands of that verb, one of Verbs)
//	POST /down                         close the listener and every session: connections are refused
//	POST /up                           listen again
//	POST /reset                        clear every pending fault (does not bring the registry up)
//	GET  /domains/{name}               the registry's record of a domain (AdminDomain; no auth code)
//	GET  /transactions                 every recorded transform command (AdminTransaction), by clID and clTRID
func (s *Server) Admin() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /stats", s.adminState)
	n := func(w http.ResponseWriter, r *http.Request) (counted, bool) {
		v, err := strconv.Atoi(r.URL.Query().Get("n"))
		if err != nil || v < 0 {
			http.Error(w, "n: a count >= 0 is required", http.StatusBadRequest)
			return counted{}, false
		}
		verb := r.URL.Query().Get("verb")
		if verb != "" && !slices.Contains(Verbs, verb) {
			http.Error(w, "verb: one of "+strings.Join(Verbs, ", "), http.StatusBadRequest)
			return counted{}, false
		}
		return counted{n: v, verb: verb}, true
	}
	// fault is POST path: n (and verb) as every fault takes them, then set
	// with them under the lock; set's error (nothing set) answers 400.
	fault := func(path string, set func(q url.Values, v counted) error) {
		mux.HandleFunc("POST "+path, func(w http.ResponseWriter, r *http.Request) {
			v, ok := n(w, r)
			if !ok {
				return
			}
			s.mu.Lock()
			err := set(r.URL.Query(), v)
			s.mu.Unlock()
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			s.adminState(w, r)
		})
	}
	fault("/fail", func(q url.Values, v counted) error {
		code := 2400
		if c := q.Get("code"); c != "" {
			var err error
			if code, err = strconv.Atoi(c); err != nil || code < 2000 || code > 2502 {
				return errors.New("code: an EPP error code 2000-2502")
			}
		}
		s.faults.fail, s.faults.failCode = v, code
		return nil
	})
	fault("/drop", func(q url.Values, v counted) error {
		switch q.Get("when") {
		case "before", "":
			s.faults.dropBefore = v
		case "after":
			s.faults.dropAfter = v
		default:
			return errors.New("when: before or after")
		}
		return nil
	})
	fault("/delay", func(q url.Values, v counted) error {
		d, err := time.ParseDuration(q.Get("d"))
		if err != nil || d < 0 {
			return errors.New("d: a duration such as 2s")
		}
		s.faults.delay, s.faults.delayBy = v, d
		return nil
	})
	mux.HandleFunc("POST /down", func(w http.ResponseWriter, r *http.Request) {
		s.setDown(true)
		s.adminState(w, r)
	})
	mux.HandleFunc("POST /up", func(w http.ResponseWriter, r *http.Request) {
		if err := s.setDown(false); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		s.adminState(w, r)
	})
	mux.HandleFunc("GET /domains/{name}", s.adminDomain)
	mux.HandleFunc("GET /transactions", s.adminTransactions)
	mux.HandleFunc("POST /reset", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.faults = faults{}
		s.mu.Unlock()
		s.adminState(w, r)
	})
	return mux
}

// AdminState is what the admin endpoint answers.
type AdminState struct {
	Stats
	FailNext     int    `json:"fail_next"`
	FailOn       string `json:"fail_on,omitempty"` // the verb the faults count, if limited
	FailCode     int    `json:"fail_code,omitempty"`
	DropBefore   int    `json:"drop_before"`
	DropBeforeOn string `json:"drop_before_on,omitempty"`
	DropAfter    int    `json:"drop_after"`
	DropAfterOn  string `json:"drop_after_on,omitempty"`
	DelayNext    int    `json:"delay_next"`
	DelayOn      string `json:"delay_on,omitempty"`
	Delay        string `json:"delay,omitempty"`
}

func (s *Server) adminState(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	f := s.faults
	st := AdminState{Stats: s.stats, FailNext: f.fail.n, FailOn: f.fail.verb, FailCode: f.failCode,
		DropBefore: f.dropBefore.n, DropBeforeOn: f.dropBefore.verb, DropAfter: f.dropAfter.n, DropAfterOn: f.dropAfter.verb,
		DelayNext: f.delay.n, DelayOn: f.delay.verb}
	if f.delayBy > 0 {
		st.Delay = f.delayBy.String()
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(st)
}

// AdminDomain is the registry's record of a domain, as the admin endpoint
// shows it to tests (the auth code left out).
type AdminDomain struct {
	Name    string    `json:"name"`
	Status  []string  `json:"status,omitempty"`
	NS      []string  `json:"ns,omitempty"`
	ClID    string    `json:"cl_id"`
	ExDate  time.Time `json:"ex_date"`
	Privacy bool      `json:"privacy,omitempty"`
}

func (s *Server) adminDomain(w http.ResponseWriter, r *http.Request) {
	var rec domainRec
	var found bool
	err := s.db.View(func(tx *bolt.Tx) (err error) {
		found, err = getJSON(tx, bucketDomains, r.PathValue("name"), &rec)
		return err
	})
	switch {
	case err != nil:
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	case !found:
		http.Error(w, "no such domain", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(AdminDomain{Name: rec.Name, Status: rec.Status, NS: rec.NS, ClID: rec.ClID, ExDate: rec.ExDate, Privacy: rec.Privacy})
}

// RecordedVerbs are the verbs of the commands the registry records as
// transactions (AdminTransaction.Verb): those that change objects, each named
// where commands.go hands it to transform. Queries (check, info, poll) are not
// recorded. A transfer with an op the registry does not know is recorded
// under "domain:transfer:" and that op, refused; it is not listed here.
var RecordedVerbs = map[string]bool{
	"host:create": true, "host:update": true, "host:delete": true, "contact:create": true, "contact:update": true, "contact:delete": true,
	"domain:create": true, "domain:renew": true, "domain:update": true, "domain:delete": true,
	"domain:transfer:request": true, "domain:transfer:approve": true, "domain:transfer:reject": true,
	"domain:transfer:cancel": true,
}

// AdminTransaction is one recorded transform command: answered once (Code:
// 1xxx applied, 2xxx refused), that answer replayed to a repeat of the same
// clTRID.
type AdminTransaction struct {
	ClID   string `json:"cl_id"`
	ClTRID string `json:"cl_trid"`
	Verb   string `json:"verb"`
	Object string `json:"object"`
	Code   int    `json:"code"`
}

func (s *Server) adminTransactions(w http.ResponseWriter, r *http.Request) {
	out := []AdminTransaction{}
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketTRIDs).ForEach(func(k, v []byte) error {
			var rec tridRec
			if err := json.Unmarshal(v, &rec); err != nil {
				return err
			}
			clID, clTRID, _ := strings.Cut(string(k), "\x00")
			t := AdminTransaction{ClID: clID, ClTRID: clTRID, Verb: rec.Verb, Object: rec.Object}
			if e, err := eppxml.Unmarshal(rec.Response); err == nil && e.Response != nil && len(e.Response.Results) > 0 {
				t.Code = e.Response.Results[0].Code
			}
			out = append(out, t)
			return nil
		})
	})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(out)
}
