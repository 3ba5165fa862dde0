package eppd

import (
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hostplane/hostplane/internal/eppxml"
)

// FuzzHandle feeds arbitrary frames to a logged-in session of a real
// registry (bbolt in a temporary directory): none panics, every frame is
// answered and the session goes on (no fault is injected), and every answer
// is a valid EPP document: a greeting, or a response with an RFC 5730 code.
func FuzzHandle(f *testing.F) {
	dir := f.TempDir()
	s := &Server{cfg: Config{TLDs: []string{"test"}, Clients: map[string]string{testID: testPW}}, log: slog.New(slog.DiscardHandler),
		now: time.Now, sessions: map[*session]struct{}{}}
	var err error
	if s.db, err = openStore(filepath.Join(dir, "registry.db")); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.db.Close() })
	a, b := net.Pipe()
	f.Cleanup(func() { a.Close(); b.Close() })

	files, _ := filepath.Glob("../../internal/eppxml/testdata/*-command.xml")
	for _, p := range files {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, c := range []*eppxml.Command{
		create("seed.test"),
		{Check: &eppxml.CheckCmd{Domain: &eppxml.DomainNames{Names: []string{"seed.test", "x.com"}}}},
		{Info: &eppxml.InfoCmd{Domain: &eppxml.DomainInfo{Name: eppxml.HostsName{Name: "seed.test"}}}},
		{Renew: &eppxml.RenewCmd{Domain: &eppxml.DomainRenew{Name: "seed.test", CurExpDate: "2027-01-01"}}},
		{Update: &eppxml.UpdateCmd{Domain: &eppxml.DomainUpdate{Name: "seed.test", Add: &eppxml.DomainAddRem{
			NS: eppxml.HostAttrs([]string{"ns1.a.test"}), Status: []eppxml.Status{{S: "clientTransferProhibited"}}}}},
			Extension: &eppxml.Extension{PrivacyUpdate: &eppxml.Privacy{Enabled: true}}},
		{Transfer: &eppxml.TransferCmd{Op: "request", Domain: &eppxml.DomainTransfer{Name: "seed.test", AuthInfo: &eppxml.AuthInfo{PW: "x"}}}},
		{Create: &eppxml.CreateCmd{Contact: &eppxml.ContactCreate{ID: "c-1", Email: "a@b.test", AuthInfo: eppxml.AuthInfo{PW: "x"},
			PostalInfo: []eppxml.PostalInfo{{Type: "int", Name: "A", Addr: eppxml.Addr{City: "X", CC: "GB"}}}}}},
		{Poll: &eppxml.Poll{Op: "req"}},
		{Check: &eppxml.CheckCmd{Host: &eppxml.DomainNames{Names: []string{"ns1.seed.test"}}}},
		{Create: &eppxml.CreateCmd{Host: &eppxml.HostCreate{Name: "ns1.seed.test", Addr: []eppxml.HostAddr{{IP: "v4", Addr: "192.0.2.1"}}}}},
		{Info: &eppxml.InfoCmd{Host: &eppxml.DomainName{Name: "ns1.seed.test"}}},
		{Update: &eppxml.UpdateCmd{Host: &eppxml.HostUpdate{Name: "ns1.seed.test", Add: &eppxml.HostAddRem{Addr: []eppxml.HostAddr{{IP: "v6", Addr: "2001:db8::1"}}},
			Rem: &eppxml.HostAddRem{Addr: []eppxml.HostAddr{{IP: "v4", Addr: "192.0.2.1"}}}}}},
		{Delete: &eppxml.DeleteCmd{Host: &eppxml.DomainName{Name: "ns1.seed.test"}}},
		{Delete: &eppxml.DeleteCmd{Domain: &eppxml.DomainName{Name: "seed.test"}}},
	} {
		c.ClTRID = "seed-1"
		data, err := eppxml.Marshal(&eppxml.EPP{Command: c})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		ss := &session{srv: s, raw: a, clID: testID, privacy: true}
		out, keep := ss.handle(frame)
		if out == nil {
			t.Fatal("frame not answered")
		}
		e, err := eppxml.Unmarshal(out)
		if err != nil {
			t.Fatalf("answer does not decode: %v\n%s", err, out)
		}
		if e.Greeting != nil {
			return
		}
		if e.Response == nil || len(e.Response.Results) != 1 {
			t.Fatalf("answer is not a response with one result:\n%s", out)
		}
		code := e.Response.Results[0].Code
		if eppxml.Message(code) == "" {
			t.Fatalf("result code %d is not an RFC 5730 code", code)
		}
		if !keep && code != eppxml.CodeBye {
			t.Fatalf("session ended after %d", code)
		}
	})
}
