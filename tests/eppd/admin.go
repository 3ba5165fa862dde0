package eppd

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// takeFault consumes the failure injection that applies to the next
// command.
type fault struct {
	failCode   int
	dropBefore bool
	dropAfter  bool
	delay      time.Duration
}

func (s *Server) takeFault() fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := &s.faults
	var out fault
	if f.delayN > 0 {
		f.delayN--
		out.delay = f.delay
	}
	switch {
	case f.failN > 0:
		f.failN--
		out.failCode = f.failCode
	case f.dropBefore > 0:
		f.dropBefore--
		out.dropBefore = true
	case f.dropAfter > 0:
		f.dropAfter--
		out.dropAfter = true
	}
	if out != (fault{}) {
		s.stats.Injected++
	}
	return out
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
//	POST /down                         close the listener and every session: connections are refused
//	POST /up                           listen again
//	POST /reset                        clear every pending fault (does not bring the registry up)
//	GET  /domains/{name}               the registry's record of a domain (AdminDomain; no auth code)
//	GET  /transactions                 every recorded transform command (AdminTransaction), by clID and clTRID
func (s *Server) Admin() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /stats", s.adminState)
	n := func(w http.ResponseWriter, r *http.Request) (int, bool) {
		v, err := strconv.Atoi(r.URL.Query().Get("n"))
		if err != nil || v < 0 {
			http.Error(w, "n: a count >= 0 is required", http.StatusBadRequest)
			return 0, false
		}
		return v, true
	}
	mux.HandleFunc("POST /fail", func(w http.ResponseWriter, r *http.Request) {
		v, ok := n(w, r)
		if !ok {
			return
		}
		code := 2400
		if c := r.URL.Query().Get("code"); c != "" {
			var err error
			if code, err = strconv.Atoi(c); err != nil || code < 2000 || code > 2502 {
				http.Error(w, "code: an EPP error code 2000-2502", http.StatusBadRequest)
				return
			}
		}
		s.mu.Lock()
		s.faults.failN, s.faults.failCode = v, code
		s.mu.Unlock()
		s.adminState(w, r)
	})
	mux.HandleFunc("POST /drop", func(w http.ResponseWriter, r *http.Request) {
		v, ok := n(w, r)
		if !ok {
			return
		}
		s.mu.Lock()
		switch r.URL.Query().Get("when") {
		case "before", "":
			s.faults.dropBefore = v
		case "after":
			s.faults.dropAfter = v
		default:
			s.mu.Unlock()
			http.Error(w, "when: before or after", http.StatusBadRequest)
			return
		}
		s.mu.Unlock()
		s.adminState(w, r)
	})
	mux.HandleFunc("POST /delay", func(w http.ResponseWriter, r *http.Request) {
		v, ok := n(w, r)
		if !ok {
			return
		}
		d, err := time.ParseDuration(r.URL.Query().Get("d"))
		if err != nil || d < 0 {
			http.Error(w, "d: a duration such as 2s", http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		s.faults.delayN, s.faults.delay = v, d
		s.mu.Unlock()
		s.adminState(w, r)
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
	FailNext   int    `json:"fail_next"`
	FailCode   int    `json:"fail_code,omitempty"`
	DropBefore int    `json:"drop_before"`
	DropAfter  int    `json:"drop_after"`
	DelayNext  int    `json:"delay_next"`
	Delay      string `json:"delay,omitempty"`
}

func (s *Server) adminState(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	st := AdminState{Stats: s.stats, FailNext: s.faults.failN, FailCode: s.faults.failCode, DropBefore: s.faults.dropBefore,
		DropAfter: s.faults.dropAfter, DelayNext: s.faults.delayN}
	if s.faults.delay > 0 {
		st.Delay = s.faults.delay.String()
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

// AdminTransaction is one recorded transform command: applied once, its
// answer replayed to a repeat of the same clTRID.
type AdminTransaction struct {
	ClID   string `json:"cl_id"`
	ClTRID string `json:"cl_trid"`
	Verb   string `json:"verb"`
	Object string `json:"object"`
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
			out = append(out, AdminTransaction{ClID: clID, ClTRID: clTRID, Verb: rec.Verb, Object: rec.Object})
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
