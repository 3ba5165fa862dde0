package sitetls

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/hostplane/hostplane/agent/internal/hosting"
	"github.com/hostplane/hostplane/pkg/validate"
)

// TestLongestHostingDomainFitsTheNode pins validate.MaxHostingDomain, the
// longest domain the API takes for a hosting account or a custom domain, to
// what a node keeps on disk: hosts/<name> (SetHost, through .<name>.tmp)
// and certs/<name>.pem, written through atomicfile's temporary file
// .<name>.pem.tmp-<up to 10 digits>. All are made for a name of that length
// on the test's file system; one byte more and the longest temporary name of
// the certificate is ENAMETOOLONG (Linux's 255-byte file name), as the node
// failed a hosting.create for a 251-byte domain before the API refused it.
func TestLongestHostingDomainFitsTheNode(t *testing.T) {
	name := func(n int) string {
		s := strings.Repeat(strings.Repeat("a", 63)+".", (n-4)/64)
		if r := n - 4 - len(s); r > 0 {
			s += strings.Repeat("b", r)
		} else {
			s = strings.TrimSuffix(s, ".")
		}
		return s + ".com"
	}
	host := name(validate.MaxHostingDomain)
	if a, err := validate.HostingDomain(host); err != nil || a != host || len(host) != validate.MaxHostingDomain {
		t.Fatalf("%d-byte name: %q %v", len(host), a, err)
	}
	l := hosting.Layout{Root: t.TempDir()}
	if err := os.MkdirAll(l.HostsDir(), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := l.SetHost(host, "shopa"); err != nil {
		t.Fatalf("SetHost of a %d-byte name: %v", len(host), err)
	}
	if l.HostUser(host) != "shopa" {
		t.Fatalf("hosts/<%d-byte name> does not point at shopa", len(host))
	}
	certs := t.TempDir()
	st := &Store{CertsDir: certs}
	longestTemp := func(n string) string { return filepath.Join(certs, "."+filepath.Base(st.Path(n))+".tmp-4294967295") }
	if err := os.WriteFile(st.Path(host), nil, 0o600); err != nil {
		t.Fatalf("certs/<%d-byte name>.pem: %v", len(host), err)
	}
	if err := os.WriteFile(longestTemp(host), nil, 0o600); err != nil {
		t.Fatalf("the longest temporary file of certs/<%d-byte name>.pem: %v", len(host), err)
	}
	over := name(validate.MaxHostingDomain + 1)
	if err := os.WriteFile(longestTemp(over), nil, 0o600); !errors.Is(err, syscall.ENAMETOOLONG) {
		t.Fatalf("the longest temporary file of certs/<%d-byte name>.pem: %v, want ENAMETOOLONG (MaxHostingDomain is not the tight bound)", len(over), err)
	}
}
