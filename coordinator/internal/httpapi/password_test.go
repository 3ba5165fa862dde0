package httpapi

import (
	"syscall"
	"testing"
	"time"
)

// TestNewPasswordIsUniform: every character of the 62 turns up about as
// often as the others over 20,000 passwords (400,000 characters, ~6,450
// each; the least and the most frequent within 8% of the mean, > 6 standard
// deviations). A byte taken modulo 62 without drawing again those of 248 or
// more would make the first eight characters (a-h) 25% more frequent than the
// others (~19% over the mean).
func TestNewPasswordIsUniform(t *testing.T) {
	const chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	const n = 20000
	count := map[rune]int{}
	for range n {
		pw, err := newPassword()
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range pw {
			count[c]++
		}
	}
	mean := float64(n*passwordLength) / float64(len(chars))
	for _, c := range chars {
		if dev := float64(count[c])/mean - 1; dev < -0.08 || dev > 0.08 {
			t.Errorf("%q: %d times, %.1f%% off the mean %.0f", c, count[c], 100*dev, mean)
		}
	}
	if len(count) != len(chars) {
		t.Errorf("%d distinct characters, want %d: %v", len(count), len(chars), count)
	}
}

// BenchmarkNewPassword is the CPU one password costs (user and system
// time, steadier than the wall clock on a shared machine).
func BenchmarkNewPassword(b *testing.B) {
	var r0, r1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &r0)
	for range b.N {
		if _, err := newPassword(); err != nil {
			b.Fatal(err)
		}
	}
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &r1)
	cpu := time.Duration(r1.Utime.Nano() - r0.Utime.Nano() + r1.Stime.Nano() - r0.Stime.Nano())
	b.ReportMetric(float64(cpu.Nanoseconds())/1e3/float64(b.N), "cpu-µs/op")
}
