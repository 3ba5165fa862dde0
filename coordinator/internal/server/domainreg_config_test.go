package server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDomainRegPasswordFile: the registrar's EPP password is read from its
// file, one line; a missing setting, an unreadable file or a file that is not
// one line is refused naming the flag, never with the password.
func TestDomainRegPasswordFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cfg := func(file string) DomainRegConfig {
		c := domainRegDefaults()
		c.EPPAddr, c.EPPClientID, c.EPPPassFile = "epp.example.test:700", "hostplane", file
		return c
	}
	good := cfg(write("good", " s3cret-epp \n"))
	if err := good.validate(); err != nil || good.password != "s3cret-epp" {
		t.Fatalf("good file: password %q, %v", good.password, err)
	}
	for file, want := range map[string]string{
		"":                               "registrar-epp-password-file is required with registrar-epp-addr",
		filepath.Join(dir, "missing"):    "registrar-epp-password-file: open ",
		write("empty", "\n"):             "registrar-epp-password-file: the file must hold the password on one line",
		write("two", "s3cret-epp\nmore"): "registrar-epp-password-file: the file must hold the password on one line",
	} {
		c := cfg(file)
		err := c.validate()
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("file %q: %v, want %q (without the password)", file, err, want)
		}
	}
}
