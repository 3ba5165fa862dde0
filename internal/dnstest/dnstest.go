// Package dnstest is an authoritative DNS server the tests control, in
// process (github.com/miekg/dns) on 127.0.0.1 over UDP and TCP. It serves
// the zones it is given with the AA bit, their SOA in the authority section
// of a negative answer, and doubles as the "recursive" resolver a check
// starts from (it answers the names it holds and refuses the rest).
package dnstest

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// Server is a running authoritative server.
type Server struct {
	Addr string // 127.0.0.1:PORT, UDP and TCP
	Port string

	mu    sync.Mutex
	zones []string            // apexes, fqdn, lower case
	rrs   map[string][]dns.RR // by lower-case fqdn owner
	udp   *dns.Server
	tcp   *dns.Server
	holds map[string]*hold // by lower-case fqdn
}

type hold struct {
	arrived, released chan struct{}
	once              sync.Once
}

// Start serves zones (each gets an SOA, and NS ns1.<zone> at 127.0.0.1) until
// the test ends.
func Start(t testing.TB, zones ...string) *Server {
	t.Helper()
	// UDP and TCP on one port number: the UDP port comes from the kernel and
	// another process may hold the same TCP port, so try a few ports.
	var (
		pc   net.PacketConn
		ln   net.Listener
		port string
		err  error
	)
	for try := 0; ; try++ {
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		_, port, _ = net.SplitHostPort(pc.LocalAddr().String())
		if ln, err = net.Listen("tcp", "127.0.0.1:"+port); err == nil {
			break
		}
		pc.Close()
		if try == 20 {
			t.Fatal(err)
		}
	}
	s := &Server{Addr: pc.LocalAddr().String(), Port: port, rrs: map[string][]dns.RR{}}
	for _, z := range zones {
		z = dns.Fqdn(strings.ToLower(z))
		s.zones = append(s.zones, z)
		s.Add(t, fmt.Sprintf("%s 60 IN SOA ns1.%s hostmaster.%s 1 60 60 600 60", z, z, z))
		s.Add(t, fmt.Sprintf("%s 60 IN NS ns1.%s", z, z))
		s.Add(t, fmt.Sprintf("ns1.%s 60 IN A 127.0.0.1", z))
	}
	mux := dns.NewServeMux()
	mux.HandleFunc(".", s.serve)
	s.udp = &dns.Server{PacketConn: pc, Handler: mux}
	s.tcp = &dns.Server{Listener: ln, Handler: mux}
	started := make(chan struct{}, 2)
	s.udp.NotifyStartedFunc = func() { started <- struct{}{} }
	s.tcp.NotifyStartedFunc = func() { started <- struct{}{} }
	go s.udp.ActivateAndServe() //nolint:errcheck // ends with Shutdown
	go s.tcp.ActivateAndServe() //nolint:errcheck
	<-started
	<-started
	t.Cleanup(func() {
		s.udp.Shutdown() //nolint:errcheck
		s.tcp.Shutdown() //nolint:errcheck
	})
	return s
}

// Add adds one record in zone-file syntax ("a.example.test. 60 IN A 192.0.2.1").
func (s *Server) Add(t testing.TB, rr string) {
	t.Helper()
	r, err := dns.NewRR(rr)
	if err != nil {
		t.Fatalf("dnstest: %q: %v", rr, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k := strings.ToLower(r.Header().Name)
	s.rrs[k] = append(s.rrs[k], r)
}

// Remove drops every record of owner name of type typ ("A", "TXT", …).
func (s *Server) Remove(name, typ string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := dns.Fqdn(strings.ToLower(name))
	qt := dns.StringToType[typ]
	kept := s.rrs[k][:0]
	for _, rr := range s.rrs[k] {
		if rr.Header().Rrtype != qt {
			kept = append(kept, rr)
		}
	}
	s.rrs[k] = kept
}

// Hold makes the queries of name wait (the record is there, the answer
// late): arrived is closed when the first one comes, release lets them all
// be answered (and ends the hold; also at the test's end).
func (s *Server) Hold(t testing.TB, name string) (arrived <-chan struct{}, release func()) {
	h := &hold{arrived: make(chan struct{}), released: make(chan struct{})}
	k := dns.Fqdn(strings.ToLower(name))
	s.mu.Lock()
	if s.holds == nil {
		s.holds = map[string]*hold{}
	}
	s.holds[k] = h
	s.mu.Unlock()
	var once sync.Once
	release = func() {
		once.Do(func() {
			s.mu.Lock()
			delete(s.holds, k)
			s.mu.Unlock()
			close(h.released)
		})
	}
	t.Cleanup(release)
	return h.arrived, release
}

func (s *Server) zoneOf(name string) string {
	best := ""
	for _, z := range s.zones {
		if (name == z || strings.HasSuffix(name, "."+z)) && len(z) > len(best) {
			best = z
		}
	}
	return best
}

func (s *Server) serve(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	if len(req.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		w.WriteMsg(m) //nolint:errcheck
		return
	}
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	s.mu.Lock()
	h := s.holds[name]
	s.mu.Unlock()
	if h != nil {
		h.once.Do(func() { close(h.arrived) })
		<-h.released
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	zone := s.zoneOf(name)
	if zone == "" {
		m.Rcode = dns.RcodeRefused
		w.WriteMsg(m) //nolint:errcheck
		return
	}
	m.Authoritative = true
	rrs, exists := s.rrs[name]
	for _, rr := range rrs {
		t := rr.Header().Rrtype
		if t == q.Qtype || (t == dns.TypeCNAME && q.Qtype != dns.TypeCNAME) {
			m.Answer = append(m.Answer, dns.Copy(rr))
		}
	}
	if len(m.Answer) == 0 {
		if !exists || len(rrs) == 0 {
			m.Rcode = dns.RcodeNameError
			// An empty non-terminal (a name below which records exist) is NODATA.
			for k, v := range s.rrs {
				if strings.HasSuffix(k, "."+name) && len(v) > 0 {
					m.Rcode = dns.RcodeSuccess
					break
				}
			}
		}
		for _, rr := range s.rrs[zone] {
			if rr.Header().Rrtype == dns.TypeSOA {
				m.Ns = append(m.Ns, dns.Copy(rr))
			}
		}
	}
	w.WriteMsg(m) //nolint:errcheck
}
