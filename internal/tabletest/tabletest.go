// Package tabletest checks a function of one argument against a table of
// inputs and the answers it must give, for the table tests of several
// packages (each wrote the same loop, comparison and failure line).
package tabletest

import "testing"

// Equal checks that f(in) is want for each entry of cases; a failure names
// f as name and shows the input, the answer and the one wanted.
func Equal[In, Out comparable](t testing.TB, name string, f func(In) Out, cases map[In]Out) {
	t.Helper()
	for in, want := range cases {
		if got := f(in); got != want {
			t.Errorf("%s(%#v) = %#v, want %#v", name, in, got, want)
		}
	}
}

// Accepts is Equal for a function that can refuse its input: each input of
// cases must be taken (a nil error) and give want.
func Accepts[In, Out comparable](t testing.TB, name string, f func(In) (Out, error), cases map[In]Out) {
	t.Helper()
	for in, want := range cases {
		if got, err := f(in); err != nil || got != want {
			t.Errorf("%s(%#v) = %#v, %v; want %#v", name, in, got, err, want)
		}
	}
}
