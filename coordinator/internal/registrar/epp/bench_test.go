package epp_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/hostplane/hostplane/coordinator/internal/registrar"
)

// BenchmarkCommands measures one client session against the registry
// binary on loopback: <hello> (framing and TLS only, the baseline), a
// domain:check (a read), a domain:create (a bbolt write with its clTRID
// record) and the repeat of an applied create (answered from the record).
func BenchmarkCommands(b *testing.B) {
	r := startRegistry(b)
	c := dial(b, r, idA, pwA)
	ctx := context.Background()
	if err := c.Ping(ctx); err != nil {
		b.Fatal(err)
	}
	b.Run("hello", func(b *testing.B) {
		for b.Loop() {
			if err := c.Ping(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("check", func(b *testing.B) {
		for b.Loop() {
			if _, err := c.Check(ctx, "bench.test"); err != nil {
				b.Fatal(err)
			}
		}
	})
	i := 0
	b.Run("create", func(b *testing.B) {
		for b.Loop() {
			i++
			if _, err := c.Register(ctx, registrar.RegisterRequest{ClTRID: fmt.Sprintf("bench-%d", i), Name: fmt.Sprintf("b%d.test", i), Years: 1}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("create-repeat", func(b *testing.B) {
		for b.Loop() {
			if _, err := c.Register(ctx, registrar.RegisterRequest{ClTRID: "bench-1", Name: "b1.test", Years: 1}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
