package validate

import (
	"errors"
	"regexp"
	"strings"
	"testing"
)

// BadHostingDomains is a corpus of domains every layer must refuse.
var BadHostingDomains = []string{
	"", "example", "EXAMPLE.com", "Example.com", "example.com.", "*.example.com", "a..b", ".example.com",
	"-a.example.com", "a-.example.com", "../etc", "a/b.com", "a;b.com", "a$b.com", "a b.com", "a\nb.com",
	"a.com\n", "a\x00.com", "ex\u0430mple.com", "exämple.com", "example.com\u200b", "xn--a.com\u202e",
	"127.0.0.1", "1.2.3.4", "[::1]", "::1", "a.123", "a_b.com", "a.b:80",
	strings.Repeat("a", 64) + ".com", strings.Repeat("a.", 127) + "com", "\xff.com",
}

// BadHostingUsernames is a corpus of usernames every layer must refuse.
var BadHostingUsernames = []string{
	"", "ab", "Abc", "ABC", "1abc", "a-bc", "a_bc", "a.bc", "a bc", "abc;", "ab$c", "abc\n", "..", "../abc",
	"ab/c", "root", "mysql", "www", "nobody", "abcdefghijklmnopq", "ab\u0441d", "abçd", "\u200babc", "abc\x00",
}

func TestHostingDomainCorpus(t *testing.T) {
	for _, s := range BadHostingDomains {
		err := HostingDomain("domain", s)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "domain") {
			t.Errorf("HostingDomain(%q) = %v, want an invalid error naming the field", s, err)
		}
	}
	for _, s := range []string{"example.com", "a.b.c.example.co.uk", "xn--bcher-kva.example", "1a.example.com",
		"a-b.example.com", strings.Repeat("a", 63) + ".com"} {
		if err := HostingDomain("domain", s); err != nil {
			t.Errorf("HostingDomain(%q) = %v", s, err)
		}
	}
}

func TestHostingUsernameCorpus(t *testing.T) {
	for _, s := range BadHostingUsernames {
		err := HostingUsername(s)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "username") {
			t.Errorf("HostingUsername(%q) = %v, want an invalid error naming the field", s, err)
		}
	}
	for _, s := range []string{"abc", "ada2", "a1234567890bcdef"} {
		if err := HostingUsername(s); err != nil {
			t.Errorf("HostingUsername(%q) = %v", s, err)
		}
	}
}

func TestHostingPasswordNeverQuoted(t *testing.T) {
	for _, s := range []string{"short", "has space in it 12345", "quote'quote'quote'", strings.Repeat("a", 65), "pässwordpässword1"} {
		err := HostingPassword("sftp_password", s)
		if err == nil || strings.Contains(err.Error(), s) {
			t.Errorf("HostingPassword(%q) = %v", s, err)
		}
	}
	if err := HostingPassword("sftp_password", "Abcdefgh12345678"); err != nil {
		t.Error(err)
	}
}

func FuzzHostingDomain(f *testing.F) {
	for _, s := range BadHostingDomains {
		f.Add(s)
	}
	f.Add("example.com")
	f.Fuzz(func(t *testing.T, s string) {
		if HostingDomain("domain", s) != nil {
			return
		}
		if strings.ContainsAny(s, "/\\;$ \n\r\t\x00'\"*") || strings.Contains(s, "..") || strings.ToLower(s) != s {
			t.Fatalf("accepted %q", s)
		}
		if !hostRE.MatchString(s) {
			t.Fatalf("accepted %q which nginx's map refuses", s)
		}
	})
}

// hostRE is hosting.HostRegex (the nginx map), copied: the agent package
// may not be imported here.
var hostRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$`)
