package console

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/internal/consoletoken"
)

// TestUsedLogSurvivesRestart: a token used before the agent restarted is still
// refused after it, expired ids are dropped when the log is reopened, and a
// temporary file a crashed compaction left is removed.
func TestUsedLogSurvivesRestart(t *testing.T) {
	now := time.UnixMilli(1_800_000_000_000)
	clock := func() time.Time { return now }
	key, _ := consoletoken.DeriveKey(bytes.Repeat([]byte{5}, 32))
	path := filepath.Join(t.TempDir(), "console-used")
	open := func() (*consoletoken.Verifier, *UsedLog) {
		t.Helper()
		v := consoletoken.NewVerifier("hv-01", clock)
		if err := v.AddKey(key.Public().(ed25519.PublicKey)); err != nil {
			t.Fatal(err)
		}
		l, err := OpenUsedLog(path, v, clock)
		if err != nil {
			t.Fatal(err)
		}
		return v, l
	}
	sign := func(ttl time.Duration) string {
		tok, err := consoletoken.Sign(key, consoletoken.Claims{ID: consoletoken.NewID(), Node: "hv-01", Server: "srv_1", VM: "hp-1", Expires: now.Add(ttl).UnixMilli()})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	v, l := open()
	short, long := sign(10*time.Second), sign(time.Minute)
	for _, tok := range []string{short, long} {
		if _, err := v.Verify(tok); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	// A torn line from a crash is skipped.
	f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0o600)
	f.WriteString("17999")
	f.Close()

	// A compaction cut short by a crash left its temporary file beside the log.
	stale := filepath.Join(filepath.Dir(path), ".console-used.tmp-4711")
	if err := os.WriteFile(stale, []byte("1 x\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	now = now.Add(20 * time.Second) // short expired, long not
	v, l = open()
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the crashed compaction's temporary file is still there: %v", err)
	}
	defer l.Close()
	if _, err := v.Verify(long); !errors.Is(err, consoletoken.ErrReused) {
		t.Fatalf("a token used before the restart: %v, want ErrReused", err)
	}
	b, _ := os.ReadFile(path)
	if lines := strings.Count(string(b), "\n"); lines != 1 {
		t.Fatalf("log after reopening holds %d lines, want the one unexpired id:\n%s", lines, b)
	}
	// A closed log refuses tokens rather than forgetting them.
	l.Close()
	if _, err := v.Verify(sign(time.Minute)); err == nil {
		t.Fatal("a token was accepted while its use could not be recorded")
	}
}
