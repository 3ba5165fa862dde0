package server

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"time"
)

// TestClockOptIn is the environment variable that must hold
// TestClockOptInValue for --test-clock-file to be accepted: the flag moves
// the time every command carries (renewals, suspensions, expiries), which
// no production coordinator may do.
const (
	TestClockOptIn      = "HOSTPLANE_TEST_CLOCK_OPT_IN"
	TestClockOptInValue = "this-is-a-test"
)

// testClock is the wall clock moved by the duration a file holds (e.g.
// "720h" or "-1h30m"), read again whenever the file changes. Tests only: it
// lets a test move a cluster of coordinator processes through renewal
// periods.
type testClock struct {
	path string
	mu   sync.Mutex
	mod  time.Time
	size int64
	off  time.Duration
}

func newTestClock(path string) (*testClock, error) {
	if os.Getenv(TestClockOptIn) != TestClockOptInValue {
		return nil, fmt.Errorf("test-clock-file is for tests only: it needs %s=%s in the environment", TestClockOptIn, TestClockOptInValue)
	}
	c := &testClock{path: path}
	if err := c.load(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *testClock) load() error {
	st, err := os.Stat(c.path)
	if err != nil {
		return fmt.Errorf("test-clock-file: %w", err)
	}
	if st.ModTime().Equal(c.mod) && st.Size() == c.size {
		return nil
	}
	b, err := os.ReadFile(c.path)
	if err != nil {
		return fmt.Errorf("test-clock-file: %w", err)
	}
	off, err := time.ParseDuration(strings.TrimSpace(string(b)))
	if err != nil {
		return fmt.Errorf("test-clock-file %s: %w", c.path, err)
	}
	c.mod, c.size, c.off = st.ModTime(), st.Size(), off
	return nil
}

// Now is the wall clock plus the file's offset (the last one read when the
// file cannot be read now).
func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	_ = c.load()
	return time.Now().Add(c.off)
}
