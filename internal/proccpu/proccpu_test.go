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
