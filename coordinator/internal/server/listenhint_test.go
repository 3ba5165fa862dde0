package server

import (
	"net"
	"regexp"
	"testing"
)

// TestListenHintNamesTheVariable: a coordinator whose API or Raft address is
// taken says which setting to change, as a flag and as the environment
// variable `make run` takes it by (scripts/run-local.sh passes no flags of
// its own); the variable named sets that address.
func TestListenHintNamesTheVariable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, inUse := net.Listen("tcp", l.Addr().String())
	if inUse == nil {
		t.Fatal("a second listener on a taken address")
	}
	for flag, got := range map[string]func(Config) string{
		"--api-addr":  func(c Config) string { return c.APIAddr },
		"--raft-addr": func(c Config) string { return c.RaftAddr },
	} {
		hint := listenHint(inUse, flag)
		m := regexp.MustCompile(`another ` + flag + ` or (HOSTPLANE_[A-Z_]+)\)$`).FindStringSubmatch(hint)
		if m == nil {
			t.Fatalf("%s taken: hint %q does not name the flag and its variable", flag, hint)
		}
		t.Setenv(m[1], "127.0.0.1:1")
		c, err := loadConfig(t, "")
		if err != nil || got(c) != "127.0.0.1:1" {
			t.Errorf("%s=127.0.0.1:1 (the variable the hint names) loads %q, %v; want it to set %s", m[1], got(c), err, flag)
		}
	}
}
