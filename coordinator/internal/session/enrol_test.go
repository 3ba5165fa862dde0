package session

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"testing"
	"time"

	pb "github.com/hostplane/hostplane/proto"
	"google.golang.org/protobuf/proto"
)

func csrFor(t testing.TB, cn string) []byte {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func validToken() string {
	return pb.JoinToken{ID: "jt_0123456789abcdef", Secret: "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", CAFingerprint: pb.CAFingerprint([]byte("ca"))}.String()
}

func TestParseEnrolRequest(t *testing.T) {
	good := csrFor(t, "hv-1")
	cases := []struct {
		name string
		env  *pb.Envelope
		ok   bool
	}{
		{"valid", &pb.Envelope{Body: &pb.Envelope_EnrolRequest{EnrolRequest: &pb.EnrolRequest{Token: validToken(), CsrDer: good, Hello: &pb.Hello{NodeId: "hv-1"}}}}, true},
		{"not an enrol request", &pb.Envelope{Body: &pb.Envelope_Ping{Ping: &pb.Ping{}}}, false},
		{"bad token", &pb.Envelope{Body: &pb.Envelope_EnrolRequest{EnrolRequest: &pb.EnrolRequest{Token: "hpj1.x.y.z", CsrDer: good}}}, false},
		{"no csr", &pb.Envelope{Body: &pb.Envelope_EnrolRequest{EnrolRequest: &pb.EnrolRequest{Token: validToken()}}}, false},
		{"bad node id", &pb.Envelope{Body: &pb.Envelope_EnrolRequest{EnrolRequest: &pb.EnrolRequest{Token: validToken(), CsrDer: csrFor(t, "../etc")}}}, false},
		{"hello for another node", &pb.Envelope{Body: &pb.Envelope_EnrolRequest{EnrolRequest: &pb.EnrolRequest{Token: validToken(), CsrDer: good, Hello: &pb.Hello{NodeId: "hv-2"}}}}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in, err := ParseEnrolRequest(c.env)
			if (err == nil) != c.ok {
				t.Fatalf("err = %v, want ok=%v", err, c.ok)
			}
			if c.ok && in.NodeID != "hv-1" {
				t.Fatalf("node id %q", in.NodeID)
			}
		})
	}
	// A CSR whose signature does not match its key is refused.
	bad := append([]byte(nil), good...)
	bad[len(bad)-5] ^= 0xff
	if _, _, err := ParseNodeCSR(bad); err == nil {
		t.Fatal("tampered csr accepted")
	}
}

func TestCASignsNodeAndServerCerts(t *testing.T) {
	now := time.Now()
	ca, keyDER, err := NewCA(now)
	if err != nil {
		t.Fatal(err)
	}
	again, err := LoadCA(ca.DER, keyDER)
	if err != nil || again.Fingerprint != ca.Fingerprint {
		t.Fatalf("reload: %v", err)
	}
	csr, id, err := ParseNodeCSR(csrFor(t, "hv-1"))
	if err != nil {
		t.Fatal(err)
	}
	issued, err := again.SignNode(csr, id, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(issued.DER)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatal(err)
	}
	if SerialString(cert) != issued.Serial || cert.Subject.CommonName != "hv-1" || !cert.NotAfter.Equal(issued.NotAfter) {
		t.Fatalf("issued %+v vs cert %s %s", issued, SerialString(cert), cert.NotAfter)
	}
	srv, err := ca.ServerCert(now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Leaf.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: ServerCommonName}); err != nil {
		t.Fatal(err)
	}
	// Another CA's pool does not verify this CA's certificates.
	other, _, _ := NewCA(now)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: other.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Fatal("verified against another CA")
	}
}

// FuzzEnrolRequest feeds arbitrary frames through the enrolment decoder (the
// only input a coordinator takes from a peer before it is authenticated).
func FuzzEnrolRequest(f *testing.F) {
	good, _ := proto.Marshal(&pb.Envelope{Body: &pb.Envelope_EnrolRequest{EnrolRequest: &pb.EnrolRequest{Token: validToken(), CsrDer: csrFor(f, "hv-1"), Hello: &pb.Hello{NodeId: "hv-1"}}}})
	f.Add(good)
	f.Add([]byte{})
	f.Add([]byte{0xa2, 0x01, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		env, err := pb.DecodeEnvelope(data)
		if err != nil {
			return
		}
		in, err := ParseEnrolRequest(env)
		if err != nil {
			return
		}
		if !ValidNodeID(in.NodeID) || in.CSR == nil || in.CSR.Subject.CommonName != in.NodeID {
			t.Fatalf("accepted an invalid request: %+v", in)
		}
	})
}
