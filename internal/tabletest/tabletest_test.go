package tabletest

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// recorder is a testing.TB that keeps what the checks report.
type recorder struct {
	testing.TB
	errs []string
}

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

// TestEqualReportsEachWrongAnswer: a right answer is silent; each wrong one
// is one failure naming the function, the input, the answer and the want.
func TestEqualReportsEachWrongAnswer(t *testing.T) {
	r := &recorder{TB: t}
	Equal(r, "ToUpper", strings.ToUpper, map[string]string{"a": "A", "b": "b", "c\n": "C"})
	if len(r.errs) != 2 || !contains(r.errs, `ToUpper("b") = "B", want "b"`) || !contains(r.errs, `ToUpper("c\n") = "C\n", want "C"`) {
		t.Errorf("failures %q; want ToUpper of b and of c\\n", r.errs)
	}
	r = &recorder{TB: t}
	Equal(r, "Itoa", strconv.Itoa, map[int]string{1: "1", 2: "two"})
	if len(r.errs) != 1 || r.errs[0] != `Itoa(2) = "2", want "two"` {
		t.Errorf("failures %q; want Itoa(2)", r.errs)
	}
}

// TestAcceptsReportsRefusalsAndWrongAnswers: a refused input fails with its
// error, a wrong answer with the answer.
func TestAcceptsReportsRefusalsAndWrongAnswers(t *testing.T) {
	r := &recorder{TB: t}
	Accepts(r, "Atoi", strconv.Atoi, map[string]int{"1": 1, "x": 0, "2": 3})
	if len(r.errs) != 2 || !contains(r.errs, `Atoi("2") = 2, <nil>; want 3`) || !strings.HasPrefix(find(r.errs, `Atoi("x")`), `Atoi("x") = 0, strconv.Atoi: parsing "x": invalid syntax; want 0`) {
		t.Errorf("failures %q; want Atoi of x (refused) and of 2", r.errs)
	}
	r = &recorder{TB: t}
	Accepts(r, "fail", func(string) (string, error) { return "", errors.New("no") }, map[string]string{})
	if len(r.errs) != 0 {
		t.Errorf("an empty table failed: %q", r.errs)
	}
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

func find(l []string, prefix string) string {
	for _, s := range l {
		if strings.HasPrefix(s, prefix) {
			return s
		}
	}
	return ""
}
