package validate

import (
	"errors"
	"regexp"
	"strings"
	"testing"
)

// BadHostingUsernames is a corpus of usernames every layer must refuse.
var BadHostingUsernames = []string{
	"", "ab", "Abc", "ABC", "1abc", "a-bc", "a_bc", "a.bc", "a bc", "abc;", "ab$c", "abc\n", "..", "../abc",
	"ab/c", "root", "mysql", "www", "nobody", "abcdefghijklmnopq", "ab\u0441d", "abçd", "\u200babc", "abc\x00",
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

// TestNewHostingUsername: a new account may not take a distribution's
// system user (a node that has the user refuses the account after the order
// was charged), while an existing account of that name still passes
// HostingUsername (the agent's check on every later operation).
func TestNewHostingUsername(t *testing.T) {
	for _, s := range append([]string{"ubuntu", "postgres", "redis", "syslog", "debian"}, BadHostingUsernames...) {
		if err := NewHostingUsername(s); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "username") {
			t.Errorf("NewHostingUsername(%q) = %v, want an invalid error naming the field", s, err)
		}
	}
	for _, s := range []string{"ubuntu", "postgres", "redis"} {
		if err := HostingUsername(s); err != nil {
			t.Errorf("HostingUsername(%q) = %v: an existing account of that name must stay manageable", s, err)
		}
	}
	for _, s := range []string{"abc", "shop", "ubuntu2"} {
		if err := NewHostingUsername(s); err != nil {
			t.Errorf("NewHostingUsername(%q) = %v", s, err)
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

// FuzzDomainMatchesNginxGuard: every name Domain accepts (in its ASCII
// form) passes the regex map nginx applies to $host on hosting nodes, so an
// attached site is reachable and nothing else becomes a path.
func FuzzDomainMatchesNginxGuard(f *testing.F) {
	f.Add("example.com")
	f.Add("xn--bcher-kva.example")
	f.Add("../etc")
	f.Fuzz(func(t *testing.T, s string) {
		a, err := Domain(s)
		if err != nil {
			return
		}
		if !hostRE.MatchString(a) {
			t.Fatalf("Domain(%q) = %q, which nginx's map refuses", s, a)
		}
	})
}

// hostRE is hosting.HostRegex (the nginx map), copied: the agent package
// may not be imported here.
var hostRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$`)
