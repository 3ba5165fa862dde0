package eppxml

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func load(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The RFC examples (testdata, transcribed from RFC 5730/5731/5733 without
// the C:/S: prefixes) use prefixed namespaces; they decode by URI.
func TestDecodeRFCExamples(t *testing.T) {
	e, err := Unmarshal(load(t, "rfc5731-info-response.xml"))
	if err != nil {
		t.Fatal(err)
	}
	inf := e.Response.ResData.DomainInf
	if e.Response.Results[0].Code != CodeOK || inf == nil || inf.Name != "example.com" || inf.Registrant != "jd1234" ||
		!reflect.DeepEqual(inf.NS.Names(), []string{"ns1.example.com", "ns1.example.net"}) || inf.AuthInfo.PW != "2fooBAR" ||
		inf.ExDate != "2005-04-03T22:00:00.0Z" || inf.Status[0].S != "ok" || e.Response.TrID.SvTRID != "54322-XYZ" {
		t.Fatalf("domain:info response decoded as %+v", inf)
	}

	e, err = Unmarshal(load(t, "rfc5731-check-response.xml"))
	if err != nil {
		t.Fatal(err)
	}
	cd := e.Response.ResData.DomainChk.CD
	if len(cd) != 3 || !cd[0].Name.Avail || cd[1].Name.Avail || cd[1].Reason != "In use" || cd[1].Name.Name != "example.net" {
		t.Fatalf("domain:check response decoded as %+v", cd)
	}

	e, err = Unmarshal(load(t, "rfc5730-greeting.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if g := e.Greeting; g.SvcMenu.Version[0] != "1.0" || len(g.SvcMenu.ObjURI) != 3 || g.SvcMenu.SvcExtension.ExtURI[0] != "http://custom/obj1ext-1.0" ||
		!strings.Contains(g.DCP.Inner, "<all/>") {
		t.Fatalf("greeting decoded as %+v", g)
	}

	e, err = Unmarshal(load(t, "rfc5730-poll-response.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if q := e.Response.MsgQ; q.Count != 5 || q.ID != "12345" || q.Msg != "Transfer requested." || e.Response.ResData.DomainTrn.TrStatus != "pending" {
		t.Fatalf("poll response decoded as %+v %+v", q, e.Response.ResData.DomainTrn)
	}

	e, err = Unmarshal(load(t, "rfc5733-info-response.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if c := e.Response.ResData.ContactInf; c.ID != "sh8013" || c.PostalInfo[0].Addr.Street[1] != "Suite 100" || c.Voice != "+1.7035555555" || c.Email != "jdoe@example.com" {
		t.Fatalf("contact:info response decoded as %+v", c)
	}

	e, err = Unmarshal(load(t, "rfc5731-create-command.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if c := e.Command.Create.Domain; e.Command.ClTRID != "ABC-12345" || c.Name != "example.com" || c.Period.Value != 2 || c.Period.Unit != "y" ||
		len(c.Contacts) != 2 || c.AuthInfo.PW != "2fooBAR" || len(c.NS.HostObj) != 2 {
		t.Fatalf("domain:create decoded as %+v", c)
	}

	e, err = Unmarshal(load(t, "rfc5731-update-command.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if u := e.Command.Update.Domain; u.Add.Status[0].S != "clientHold" || u.Rem.Status[0].S != "clientUpdateProhibited" ||
		*u.Chg.Registrant != "sh8013" || u.Chg.AuthInfo.PW != "2BARfoo" || u.Rem.NS.HostObj[0] != "ns1.example.com" {
		t.Fatalf("domain:update decoded as %+v", u)
	}

	e, err = Unmarshal(load(t, "rfc5730-login-command.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if l := e.Command.Login; l.ClID != "ClientX" || l.PW != "foo-BAR2" || l.Options.Version != "1.0" || len(l.Svcs.ObjURI) != 3 {
		t.Fatalf("login decoded as %+v", l)
	}
}

// A command marshalled here decodes back to the same command, and an
// element of the wrong namespace is not taken for a domain element.
func TestRoundTripAndNamespaces(t *testing.T) {
	reg := ""
	in := &EPP{Command: &Command{
		Update: &UpdateCmd{Domain: &DomainUpdate{Name: "a.test",
			Add: &DomainAddRem{NS: &NS{HostAttr: []HostAttr{{HostName: "ns1.a.test", HostAddr: []HostAddr{{IP: "v4", Addr: "192.0.2.1"}}}}}, Status: []Status{{S: "clientTransferProhibited"}}},
			Chg: &DomainChg{Registrant: &reg}}},
		Extension: &Extension{PrivacyUpdate: &Privacy{Enabled: true}},
		ClTRID:    "cl-1"}}
	b, err := Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := Unmarshal(b)
	if err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if !reflect.DeepEqual(in.Command, out.Command) {
		t.Fatalf("round trip:\n%+v\n%+v\n%s", in.Command.Update.Domain, out.Command.Update.Domain, b)
	}
	if !bytes.Contains(b, []byte(`<update xmlns="urn:ietf:params:xml:ns:domain-1.0">`)) {
		t.Fatalf("domain:update not in the domain namespace:\n%s", b)
	}
	wrong := strings.ReplaceAll(string(load(t, "rfc5731-create-command.xml")), NSDomain, "urn:example:other")
	e, err := Unmarshal([]byte(wrong))
	if err == nil && e.Command.Create.Domain != nil {
		t.Fatal("an element of another namespace decoded as domain:create")
	}
	if _, err := Unmarshal([]byte(`<epp xmlns="urn:example:not-epp"><hello/></epp>`)); err == nil {
		t.Fatal("a root of another namespace was accepted")
	}
	if _, err := Unmarshal([]byte(`<epp xmlns="urn:ietf:params:xml:ns:epp-1.0"><hello/><command><logout/></command></epp>`)); err == nil {
		t.Fatal("two messages in one document were accepted")
	}
}

func TestFrames(t *testing.T) {
	var b bytes.Buffer
	if err := WriteFrame(&b, []byte("<epp/>")); err != nil {
		t.Fatal(err)
	}
	if got := b.Bytes()[:4]; !bytes.Equal(got, []byte{0, 0, 0, 10}) {
		t.Fatalf("length header %v, want total length 10 (RFC 5734: header included)", got)
	}
	f, err := ReadFrame(&b, MaxFrame)
	if err != nil || string(f) != "<epp/>" {
		t.Fatalf("frame %q, %v", f, err)
	}
	for _, hdr := range [][]byte{{0, 0, 0, 3}, {0xff, 0xff, 0xff, 0xff}} {
		if _, err := ReadFrame(bytes.NewReader(hdr), MaxFrame); !errors.Is(err, ErrFrame) {
			t.Errorf("header %v: %v, want ErrFrame", hdr, err)
		}
	}
	if _, err := ReadFrame(bytes.NewReader([]byte{0, 0, 0, 20, '<'}), MaxFrame); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("short frame: %v", err)
	}
}

// TestDecodeRFC5732Examples: the host mapping's info answer, update and
// delete (RFC 5732 §3.1.2, §3.2.5, §3.2.2) decode by URI: a host's glue
// addresses with their ip attribute, the addresses an update adds and
// removes, the name a delete names.
func TestDecodeRFC5732Examples(t *testing.T) {
	e, err := Unmarshal(load(t, "rfc5732-info-response.xml"))
	if err != nil {
		t.Fatal(err)
	}
	inf := e.Response.ResData.HostInf
	if inf == nil || inf.Name != "ns1.example.com" || inf.ROID != "NS1_EXAMPLE1-REP" || len(inf.Status) != 2 || inf.Status[0].S != "linked" ||
		!reflect.DeepEqual(inf.Addr, []HostAddr{{"v4", "192.0.2.2"}, {"v4", "192.0.2.29"}, {"v6", "1080:0:0:0:8:800:200C:417A"}}) || inf.ClID != "ClientY" {
		t.Fatalf("host:info response decoded as %+v", inf)
	}
	e, err = Unmarshal(load(t, "rfc5732-update-command.xml"))
	if err != nil {
		t.Fatal(err)
	}
	u := e.Command.Update.Host
	if u == nil || u.Name != "ns1.example.com" || !reflect.DeepEqual(u.Add.Addr, []HostAddr{{"v4", "192.0.2.22"}}) ||
		u.Add.Status[0].S != "clientUpdateProhibited" || !reflect.DeepEqual(u.Rem.Addr, []HostAddr{{"v6", "1080:0:0:0:8:800:200C:417A"}}) ||
		u.Chg == nil || u.Chg.Name != "ns2.example.com" {
		t.Fatalf("host:update decoded as %+v", u)
	}
	e, err = Unmarshal(load(t, "rfc5732-delete-command.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if d := e.Command.Delete.Host; d == nil || d.Name != "ns1.example.com" || e.Command.Delete.Domain != nil {
		t.Fatalf("host:delete decoded as %+v", e.Command.Delete)
	}
	// What is sent round-trips.
	out, err := Marshal(&EPP{Command: &Command{Update: &UpdateCmd{Host: &HostUpdate{Name: "ns1.a.test",
		Add: &HostAddRem{Addr: []HostAddr{{"v6", "2001:db8::1"}}}}}, ClTRID: "abc-1"}})
	if err != nil {
		t.Fatal(err)
	}
	if e, err := Unmarshal(out); err != nil || e.Command.Update.Host == nil || e.Command.Update.Host.Add.Addr[0].Addr != "2001:db8::1" {
		t.Fatalf("a host:update does not round-trip: %v\n%s", err, out)
	}
}

func FuzzUnmarshal(f *testing.F) {
	for _, n := range []string{"rfc5731-info-response.xml", "rfc5731-check-response.xml", "rfc5730-greeting.xml",
		"rfc5730-poll-response.xml", "rfc5731-create-command.xml", "rfc5731-update-command.xml", "rfc5733-info-response.xml",
		"rfc5732-info-response.xml", "rfc5732-update-command.xml", "rfc5732-delete-command.xml"} {
		f.Add(load(f, n))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := Unmarshal(b)
		if err != nil {
			return
		}
		// What decodes marshals, and decodes again to a valid document.
		out, err := Marshal(e)
		if err != nil {
			t.Fatalf("decoded but does not marshal: %v", err)
		}
		if _, err := Unmarshal(out); err != nil {
			t.Fatalf("re-decoding a marshalled document: %v\n%s", err, out)
		}
	})
}

func FuzzReadFrame(f *testing.F) {
	f.Add([]byte{0, 0, 0, 10, '<', 'e', 'p', 'p', '/', '>'})
	f.Add([]byte{0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := ReadFrame(bytes.NewReader(b), 64)
		if err == nil && (len(fr) > 64 || len(fr)+4 > len(b)) {
			t.Fatalf("frame of %d bytes from %d input bytes", len(fr), len(b))
		}
	})
}
