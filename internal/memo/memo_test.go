package memo

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
)

// TestGetFillsOncePerKey: many goroutines asking for the same key at once run
// fill once and all get its value; another key runs its own fill.
func TestGetFillsOncePerKey(t *testing.T) {
	var c Cache[string, *int]
	var runs atomic.Int32
	release := make(chan struct{})
	fill := func() (*int, error) {
		runs.Add(1)
		<-release // hold the first fill so the others arrive while it runs
		n := 42
		return &n, nil
	}
	const callers = 32
	got := make([]*int, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := c.Get("doc", fill)
			if err != nil {
				t.Errorf("caller %d: %v", i, err)
			}
			got[i] = v
		}()
	}
	close(release)
	wg.Wait()
	if n := runs.Load(); n != 1 {
		t.Fatalf("fill ran %d times for one key; want 1", n)
	}
	for i, v := range got {
		if v == nil || v != got[0] || *v != 42 {
			t.Fatalf("caller %d got %v; want the one value (42) every caller shares, %v", i, v, got[0])
		}
	}
	other, err := c.Get("other", func() (*int, error) { n := 7; return &n, nil })
	if err != nil || other == nil || *other != 7 {
		t.Fatalf("another key: %v, %v; want its own fill's 7", other, err)
	}
	if again, _ := c.Get("doc", fill); again != got[0] {
		t.Fatalf("a later Get of the first key: %v; want the cached %v", again, got[0])
	}
	if n := runs.Load(); n != 1 {
		t.Fatalf("first key's fill ran %d times after a later Get; want 1", n)
	}
}

// TestGetCachesTheError: a fill that fails is not run again; every caller of
// that key gets the same value and error.
func TestGetCachesTheError(t *testing.T) {
	var c Cache[[2]byte, string]
	bad := errors.New("the document does not parse")
	runs := 0
	fill := func() (string, error) { runs++; return "partial", bad }
	for range 3 {
		v, err := c.Get([2]byte{1, 2}, fill)
		if !errors.Is(err, bad) || v != "partial" {
			t.Fatalf("Get = %q, %v; want the fill's %q, %v", v, err, "partial", bad)
		}
	}
	if runs != 1 {
		t.Fatalf("a failing fill ran %d times; want 1 (its error is cached)", runs)
	}
}
