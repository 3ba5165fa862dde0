package proccpu

import (
	"os"
	"testing"
	"time"
)

// TestOf: this process's CPU time grows while it spins (within 10 s even on
// a loaded machine), and a pid that does not exist counts 0.
func TestOf(t *testing.T) {
	before := Of(os.Getpid())
	for deadline := time.Now().Add(10 * time.Second); Of(os.Getpid()) <= before; {
		if time.Now().After(deadline) {
			t.Fatalf("CPU time still %v after spinning 10 s", before)
		}
	}
	if got := Of(1 << 30); got != 0 {
		t.Fatalf("a missing process counts %v", got)
	}
}

// TestSyscalls: this process's write count grows by at least the writes it
// makes, and a pid that does not exist counts 0.
func TestSyscalls(t *testing.T) {
	f, err := os.Create(t.TempDir() + "/f")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r0, w0 := Syscalls(os.Getpid())
	for range 10 {
		if _, err := f.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, 0); err != nil {
		t.Fatal(err)
	}
	r1, w1 := Syscalls(os.Getpid())
	if w1-w0 < 10 || r1-r0 < 1 {
		t.Fatalf("10 writes and 1 read counted as %d writes and %d reads", w1-w0, r1-r0)
	}
	if r, w := Syscalls(1 << 30); r != 0 || w != 0 {
		t.Fatalf("a missing process counts %d reads, %d writes", r, w)
	}
}

// TestSwitches: a thread of this process that sleeps 20 times switches at
// least 20 times more, and a pid that does not exist counts 0.
func TestSwitches(t *testing.T) {
	before := Switches(os.Getpid())
	for range 20 {
		time.Sleep(time.Millisecond)
	}
	if got := Switches(os.Getpid()) - before; got < 20 {
		t.Fatalf("20 sleeps counted as %d context switches", got)
	}
	if got := Switches(1 << 30); got != 0 {
		t.Fatalf("a missing process counts %d", got)
	}
}

// TestParseIO: syscr and syscw are read from a /proc/<pid>/io text (not the
// byte counts beside them); a text without them is an error.
func TestParseIO(t *testing.T) {
	r, w, err := ParseIO("rchar: 6976\nwchar: 12\nsyscr: 10\nsyscw: 3\nread_bytes: 0\nwrite_bytes: 4096\ncancelled_write_bytes: 0\n")
	if err != nil || r != 10 || w != 3 {
		t.Fatalf("read %d reads, %d writes, %v", r, w, err)
	}
	if _, _, err := ParseIO("rchar: 6976\nwchar: 12\n"); err == nil {
		t.Fatal("a text without syscr/syscw was accepted")
	}
}

// TestParseSwitches: both counts of a status text add up.
func TestParseSwitches(t *testing.T) {
	if got := ParseSwitches("Name:\tx\nvoluntary_ctxt_switches:\t12\nnonvoluntary_ctxt_switches:\t5\n"); got != 17 {
		t.Fatalf("parsed %d, want 17", got)
	}
}
