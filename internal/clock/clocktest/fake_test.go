package clocktest

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/internal/clock"
)

var _ clock.Clock = (*Fake)(nil)

func TestFakeFiresWaitersWhenDue(t *testing.T) {
	t0 := time.Date(2026, 6, 3, 12, 0, 0, 0, time.UTC)
	c := NewFake(t0)
	now := c.After(0)
	later := c.After(time.Hour)
	select {
	case got := <-now:
		if !got.Equal(t0) {
			t.Fatalf("After(0) delivered %v", got)
		}
	default:
		t.Fatal("After(0) did not fire at once")
	}
	c.Advance(59 * time.Minute)
	select {
	case <-later:
		t.Fatal("fired before it was due")
	default:
	}
	c.Advance(time.Minute)
	select {
	case got := <-later:
		if !got.Equal(t0.Add(time.Hour)) || !c.Now().Equal(got) {
			t.Fatalf("delivered %v, now %v", got, c.Now())
		}
	default:
		t.Fatal("did not fire when due")
	}
}

// TestOnlyTestsImportTheFake: no non-test file of the module imports this
// package, so the fake never reaches a daemon.
func TestOnlyTestsImportTheFake(t *testing.T) {
	root, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not found at %s: %v", root, err)
	}
	const imp = `"github.com/hostplane/hostplane/internal/clock/clocktest"`
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && p != root || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if strings.Contains(string(b), imp) {
			t.Errorf("%s imports clocktest outside a test", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestOffset(t *testing.T) {
	var c Offset
	if d := time.Until(c.Now()); d > time.Second || d < -time.Second {
		t.Fatalf("zero Offset is %s off the wall clock", d)
	}
	c.Advance(720 * time.Hour)
	c.Advance(time.Hour)
	if d := time.Until(c.Now()); d < 721*time.Hour-time.Second || d > 721*time.Hour+time.Second {
		t.Fatalf("after 721h of Advance the clock is %s ahead", d)
	}
}
