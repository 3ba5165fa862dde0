package streamcap

import (
	"sync"
	"testing"
)

// TestCounter: an account's streams stop at its cap whatever the address,
// an address's at its cap whatever the account; a release frees one place,
// a second release of the same stream nothing; counts return to zero.
func TestCounter(t *testing.T) {
	c := New(2, 2)
	var rel []func()
	take := func(acc, addr string, want Refusal) {
		t.Helper()
		r, got := c.Acquire(acc, addr)
		if got != want || (got == None) != (r != nil) {
			t.Fatalf("Acquire(%s, %s) = %v; want %v", acc, addr, got, want)
		}
		if r != nil {
			rel = append(rel, r)
		}
	}
	take("a", "ip1", None)
	take("a", "ip2", None)
	take("a", "ip3", Account) // a at 2
	take("b", "ip1", None)
	take("c", "ip1", Address) // ip1 at 2
	take("c", "ip2", None)    // another address is served
	rel[0]()                  // a, ip1
	rel[0]()                  // again: nothing
	if a, ip := c.Open("a", "ip1"); a != 1 || ip != 1 {
		t.Fatalf("after one release: a %d, ip1 %d; want 1, 1", a, ip)
	}
	take("c", "ip1", None)
	take("a", "ip1", Address) // ip1 full again
	for _, r := range rel {
		r()
	}
	if len(c.accounts) != 0 || len(c.addresses) != 0 || c.Entries() != 0 {
		t.Fatalf("left after every release: %v %v", c.accounts, c.addresses)
	}
}

// TestCounterConcurrent (-race): many streams of one address never exceed its
// cap at once.
func TestCounterConcurrent(t *testing.T) {
	c := New(1000, 8)
	var mu sync.Mutex
	open, most := 0, 0
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				r, ref := c.Acquire(string(rune('a'+i%26)), "ip")
				if ref != None {
					continue
				}
				mu.Lock()
				open++
				most = max(most, open)
				mu.Unlock()
				mu.Lock()
				open--
				mu.Unlock()
				r()
			}
		}()
	}
	wg.Wait()
	if most > 8 {
		t.Fatalf("%d streams open at once from one address; cap 8", most)
	}
}
