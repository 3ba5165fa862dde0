package testpki

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"testing"
	"time"
)

// TestRefusal: a TLS 1.3 server that asks for a certificate of its CA
// refuses a client with none and one with a foreign CA's; a client with
// one of its CA's is taken (the server then waits for a request, so the
// read times out: no refusal).
func TestRefusal(t *testing.T) {
	ca := NewCA(t, "test CA", time.Hour)
	srvDER, srvKey := ca.Leaf(t, "server", time.Hour, x509.ExtKeyUsageServerAuth)
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{srvDER}, PrivateKey: srvKey}},
		ClientAuth:   tls.RequireAndVerifyClientCert, ClientCAs: pool, MinVersion: tls.VersionTLS13})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(io.Discard, c) }()
		}
	}()
	client := func(ca *CA) []tls.Certificate {
		der, key := ca.Leaf(t, "client", time.Hour, x509.ExtKeyUsageClientAuth)
		return []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}
	}
	addr := ln.Addr().String()
	if err := Refusal(addr, &tls.Config{InsecureSkipVerify: true}, 5*time.Second); err == nil {
		t.Error("a client without a certificate: not refused")
	}
	if err := Refusal(addr, &tls.Config{InsecureSkipVerify: true, Certificates: client(NewCA(t, "evil CA", time.Hour))}, 5*time.Second); err == nil {
		t.Error("a client with a foreign CA's certificate: not refused")
	}
	if err := Refusal(addr, &tls.Config{InsecureSkipVerify: true, Certificates: client(ca)}, 500*time.Millisecond); err != nil {
		t.Errorf("a client with a certificate of the server's CA: refused: %v", err)
	}
}
