package epp

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/hostplane/hostplane/coordinator/internal/registrar"
	"github.com/hostplane/hostplane/internal/eppxml"
)

// FuzzDecodeResponse feeds arbitrary registry answers to the decoders the
// client runs on them: none panics, a failure code always becomes a typed
// error, a success never does, and what is read agrees with the document.
func FuzzDecodeResponse(f *testing.F) {
	files, _ := filepath.Glob("../../../../internal/eppxml/testdata/*-response.xml")
	if len(files) == 0 {
		f.Fatal("no seed responses in internal/eppxml/testdata")
	}
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`<epp xmlns="urn:ietf:params:xml:ns:epp-1.0"><response><result code="2302"><msg>Object exists</msg>` +
		`<extValue><value><name/></value><reason>taken</reason></extValue></result><trID><svTRID>s</svTRID></trID></response></epp>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := eppxml.Unmarshal(b)
		if err != nil || e.Response == nil || len(e.Response.Results) == 0 {
			return
		}
		r := e.Response
		err = resultErr("domain:info", "x.test", r)
		var re *registrar.Error
		if eppxml.Success(r.Results[0].Code) != (err == nil) {
			t.Fatalf("code %d: error %v", r.Results[0].Code, err)
		}
		if err != nil && (!errors.As(err, &re) || re.Kind == 0 || re.Code != r.Results[0].Code) {
			t.Fatalf("code %d: not a typed error: %#v", r.Results[0].Code, err)
		}
		if rd := r.ResData; rd != nil && rd.DomainChk != nil {
			var names []string
			for _, cd := range rd.DomainChk.CD {
				names = append(names, normName(cd.Name.Name))
			}
			names = normNames(names)
			if res, err := checkResults(r, names); err == nil {
				for i, x := range res {
					if x.Name != names[i] || (!x.Available && x.Reason == "") {
						t.Fatalf("check result %d: %+v for %q", i, x, names[i])
					}
				}
			}
		}
		if d, err := domainInfo(r, "x.test"); err == nil {
			locked := slices.ContainsFunc(r.ResData.DomainInf.Status, func(s eppxml.Status) bool { return s.S == "clientTransferProhibited" })
			if d.Locked != locked || d.Name == "" {
				t.Fatalf("info: locked %v (status says %v), name %q", d.Locked, locked, d.Name)
			}
		}
		contactInfo(r, "c1")
		if h, err := hostInfo(r, "ns1.x.test"); err == nil {
			// Every glue address read is an IP address in canonical form,
			// one per address of the answer; linked as its status says.
			if len(h.Addrs) != len(r.ResData.HostInf.Addr) || h.Name == "" {
				t.Fatalf("host info: %+v from %+v", h, r.ResData.HostInf)
			}
			for _, a := range h.Addrs {
				if ip, err := netip.ParseAddr(a); err != nil || ip.String() != a {
					t.Fatalf("host info: glue address %q is not canonical", a)
				}
			}
			linked := slices.ContainsFunc(r.ResData.HostInf.Status, func(s eppxml.Status) bool { return s.S == "linked" })
			if h.Linked != linked {
				t.Fatalf("host info: linked %v, status says %v", h.Linked, linked)
			}
		}
		if m, err := pollMessage(r); err == nil && m != nil && m.ID == "" {
			t.Fatal("poll message without an id")
		}
	})
}

func TestKindFor(t *testing.T) {
	for code, want := range map[int]registrar.Kind{
		2302: registrar.KindExists, 2303: registrar.KindNotFound,
		2400: registrar.KindUnavailable, 2500: registrar.KindUnavailable, 2502: registrar.KindUnavailable,
		2501: registrar.KindRefused, 2200: registrar.KindRefused, 2202: registrar.KindRefused, 2304: registrar.KindRefused,
		2306: registrar.KindRefused, 2005: registrar.KindRefused, 2104: registrar.KindRefused,
	} {
		if got := kindFor(code); got != want {
			t.Errorf("code %d: %v, want %v", code, got, want)
		}
	}
}
