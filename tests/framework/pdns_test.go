package framework

import (
	"testing"

	"github.com/hostplane/hostplane/internal/dnstest"
	"github.com/miekg/dns"
)

// TestAskDNS: the answer of the server asked, for the name and type asked —
// a record it holds, NXDOMAIN for one it does not.
func TestAskDNS(t *testing.T) {
	s := dnstest.Start(t, "example.test")
	s.Add(t, "host.example.test. 60 IN A 192.0.2.7")
	s.Add(t, "host.example.test. 60 IN TXT \"not asked\"")
	r := AskDNS(t, s.Addr, "host.example.test.", dns.TypeA)
	if len(r.Answer) != 1 || r.Rcode != dns.RcodeSuccess {
		t.Fatalf("A host.example.test.: %v", r)
	}
	if a, ok := r.Answer[0].(*dns.A); !ok || a.A.String() != "192.0.2.7" {
		t.Fatalf("A host.example.test.: %v, want 192.0.2.7", r.Answer[0])
	}
	r = AskDNS(t, s.Addr, "gone.example.test.", dns.TypeA)
	if len(r.Answer) != 0 || r.Rcode != dns.RcodeNameError {
		t.Fatalf("A gone.example.test.: %v, want NXDOMAIN", r)
	}
}
