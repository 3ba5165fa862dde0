package server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestTestClockFile: --test-clock-file is refused without the opt-in
// variable; with it, the clock follows the file's offset as it changes.
func TestTestClockFile(t *testing.T) {
	f := filepath.Join(t.TempDir(), "clock")
	if err := os.WriteFile(f, []byte("720h\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(TestClockOptIn, "")
	if _, err := newTestClock(f); err == nil || !strings.Contains(err.Error(), TestClockOptIn) {
		t.Fatalf("without the opt-in: %v", err)
	}
	t.Setenv(TestClockOptIn, TestClockOptInValue)
	c, err := newTestClock(f)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(c.Now()); d < 719*time.Hour || d > 721*time.Hour {
		t.Fatalf("offset %v, want 720h", d)
	}
	if err := os.WriteFile(f, []byte("-48h"), 0o600); err != nil {
		t.Fatal(err)
	}
	if d := time.Until(c.Now()); d > -47*time.Hour || d < -49*time.Hour {
		t.Fatalf("offset %v after the change, want -48h", d)
	}
	if err := os.WriteFile(f, []byte("soon"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := newTestClock(f); err == nil {
		t.Fatal("a file without a duration was accepted")
	}
}
