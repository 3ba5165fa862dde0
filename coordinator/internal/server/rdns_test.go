package server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRDNSConfig: the PowerDNS settings are checked and named; the key is
// read from its file and never appears in an error.
func TestRDNSConfig(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key")
	if err := os.WriteFile(keyFile, []byte("s3cret-pdns-key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	good := RDNSConfig{APIURL: "http://127.0.0.1:8081", APIKeyFile: keyFile, Nameservers: "ns1.example.com, ns2.example.com."}
	if err := good.validate(); err != nil {
		t.Fatal(err)
	}
	if good.key != "s3cret-pdns-key" || good.ServerID != "localhost" || good.TTL != 3600 || good.Resync != 5*time.Minute ||
		strings.Join(good.nameservers(), ",") != "ns1.example.com,ns2.example.com." {
		t.Fatalf("filled config: %+v", good)
	}
	if err := (&RDNSConfig{}).validate(); err != nil {
		t.Fatalf("no PowerDNS is valid: %v", err)
	}
	empty := filepath.Join(dir, "empty")
	_ = os.WriteFile(empty, []byte("\n"), 0o600)
	for _, c := range []struct {
		cfg  RDNSConfig
		want string
	}{
		{RDNSConfig{APIURL: "ftp://x", APIKeyFile: keyFile, Nameservers: "ns1.example.com"}, "pdns-api-url"},
		{RDNSConfig{APIURL: "http://u:p@x", APIKeyFile: keyFile, Nameservers: "ns1.example.com"}, "pdns-api-url"},
		{RDNSConfig{APIURL: "http://x", Nameservers: "ns1.example.com"}, "pdns-api-key-file"},
		{RDNSConfig{APIURL: "http://x", APIKeyFile: filepath.Join(dir, "missing"), Nameservers: "ns1.example.com"}, "pdns-api-key-file"},
		{RDNSConfig{APIURL: "http://x", APIKeyFile: empty, Nameservers: "ns1.example.com"}, "pdns-api-key-file"},
		{RDNSConfig{APIURL: "http://x", APIKeyFile: keyFile}, "pdns-nameservers"},
		{RDNSConfig{APIURL: "http://x", APIKeyFile: keyFile, Nameservers: "ns1"}, "pdns-nameservers"},
		{RDNSConfig{APIURL: "http://x", APIKeyFile: keyFile, Nameservers: "ns1.example.com", ServerID: "a/b"}, "pdns-server-id"},
		{RDNSConfig{APIURL: "http://x", APIKeyFile: keyFile, Nameservers: "ns1.example.com", TTL: -1}, "pdns-ptr-ttl"},
		{RDNSConfig{APIURL: "http://x", APIKeyFile: keyFile, Nameservers: "ns1.example.com", Account: "a b"}, "pdns-account"},
		{RDNSConfig{APIURL: "http://x", APIKeyFile: keyFile, Nameservers: "ns1.example.com", Account: strings.Repeat("a", 41)}, "pdns-account"},
	} {
		err := c.cfg.validate()
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%+v: %v, want an error naming %s (without the key)", c.cfg, err, c.want)
		}
	}
}
