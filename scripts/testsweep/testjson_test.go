package main

import (
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// A go test -json stream (go 1.26's events, shortened): package p passed,
// q failed one subtest, r was cut off by its -timeout mid-test, s did not
// build; one line is go's own error, not an event. Each row is package,
// test, action, elapsed and output; package "!" is a line that is not an
// event, "#" a build event of s.
var testJSONRows = [][5]string{
	{"p", "", "start", "", ""},
	{"p", "TestOK", "run", "", ""},
	{"p", "TestOK", "output", "", "=== RUN   TestOK\n"},
	{"p", "TestOK", "output", "", "    a_test.go:3: noise of a passing test\n"},
	{"p", "TestOK/sub", "output", "", "    a_test.go:3: sub noise\n"},
	{"p", "TestOK/sub", "pass", "1.5", ""},
	{"p", "TestOK", "output", "", "--- PASS: TestOK (2.25s)\n"},
	{"p", "TestOK", "pass", "2.25", ""},
	{"p", "", "output", "", "PASS\n"},
	{"p", "", "output", "", "ok  \tp\t2.3s\n"},
	{"p", "", "pass", "2.3", ""},
	{"q", "TestBad", "output", "", "=== RUN   TestBad\n"},
	{"q", "TestBad/good", "output", "", "    q_test.go:4: good sub\n"},
	{"q", "TestBad/good", "pass", "0", ""},
	{"q", "TestBad/bad", "output", "", "    q_test.go:4: the failure\n"},
	{"q", "TestBad/bad", "output", "", "--- FAIL: TestBad/bad (0.00s)\n"},
	{"q", "TestBad/bad", "fail", "0", ""},
	{"q", "TestBad", "output", "", "--- FAIL: TestBad (3.00s)\n"},
	{"q", "TestBad", "fail", "3", ""},
	{"q", "TestFine", "output", "", "    q_test.go:9: fine's log\n"},
	{"q", "TestFine", "pass", "4", ""},
	{"q", "TestSkip", "output", "", "    q_test.go:5: skipped\n"},
	{"q", "TestSkip", "skip", "0", ""},
	{"q", "", "output", "", "FAIL\n"},
	{"q", "", "output", "", "FAIL\tq\t7.0s\n"},
	{"q", "", "fail", "7", ""},
	{"r", "TestDone", "output", "", "    r_test.go:2: done's log\n"},
	{"r", "TestDone", "pass", "5", ""},
	{"r", "TestHung", "output", "", "=== RUN   TestHung\n"},
	{"r", "TestHung", "output", "", "    r_test.go:7: waiting\n"},
	{"r", "TestHung", "output", "", "panic: test timed out after 25m0s\n"}, // go 1.26 gives these lines to the running test
	{"r", "TestHung", "output", "", "\trunning tests:\n"},
	{"r", "TestHung", "output", "", "\t\tTestHung (25m0s)\n"},
	{"r", "", "output", "", "\n"},
	{"!", "", "", "", "go: some error of go's own"},
	{"#", "", "build-output", "", "# s [s.test]\n"},
	{"#", "", "build-output", "", "s_test.go:3:28: undefined: undefined\n"},
	{"#", "", "build-fail", "", ""},
	{"s", "", "output", "", "FAIL\ts [build failed]\n"},
	{"s", "", "fail", "0", ""},
}

// testJSONStream is testJSONRows as go test -json writes them.
func testJSONStream(t *testing.T) string {
	var b strings.Builder
	for _, r := range testJSONRows {
		switch r[0] {
		case "!":
			b.WriteString(r[4] + "\n")
			continue
		case "#":
			j, _ := json.Marshal(map[string]string{"ImportPath": "s [s.test]", "Action": r[2], "Output": r[4]})
			b.WriteString(string(j) + "\n")
			continue
		}
		ev := map[string]any{"Action": r[2], "Package": r[0]}
		if r[1] != "" {
			ev["Test"] = r[1]
		}
		if r[3] != "" {
			e, err := strconv.ParseFloat(r[3], 64)
			if err != nil {
				t.Fatal(err)
			}
			ev["Elapsed"] = e
		}
		if r[2] == "output" {
			ev["Output"] = r[4]
		}
		j, _ := json.Marshal(ev)
		b.WriteString(string(j) + "\n")
	}
	return b.String()
}

func TestTestJSON(t *testing.T) {
	var out strings.Builder
	times, err := testJSON(strings.NewReader(testJSONStream(t)), &out)
	if err != nil {
		t.Fatal(err)
	}
	// What go test without -json prints: p's ok line alone; q's failed
	// test whole (its passed subtest's log too), not its passed or skipped
	// tests; r's test with no result and its panic; s's build errors; go's
	// own line.
	got := out.String()
	for _, w := range []string{
		"ok  \tp\t2.3s\n",
		"    q_test.go:4: the failure\n--- FAIL: TestBad/bad (0.00s)\n",
		"--- FAIL: TestBad (3.00s)\nFAIL\nFAIL\tq\t7.0s\n",
		"=== RUN   TestHung\n    r_test.go:7: waiting\npanic: test timed out after 25m0s\n\trunning tests:\n\t\tTestHung (25m0s)\n",
		"go: some error of go's own\n",
		"# s [s.test]\ns_test.go:3:28: undefined: undefined\nFAIL\ts [build failed]\n",
	} {
		if !strings.Contains(got, w) {
			t.Errorf("the text lacks %q; it is:\n%s", w, got)
		}
	}
	for _, nw := range []string{"noise of a passing test", "sub noise", "PASS\n", "fine's log", "skipped", "done's log"} {
		if strings.Contains(got, nw) {
			t.Errorf("the text has %q, the output of a test (or package) that passed; it is:\n%s", nw, got)
		}
	}
	wantTimes := []testTime{
		{Package: "p", Test: "TestOK", Action: "pass", Elapsed: 2.25},
		{Package: "q", Test: "TestBad", Action: "fail", Elapsed: 3},
		{Package: "q", Test: "TestFine", Action: "pass", Elapsed: 4},
		{Package: "q", Test: "TestSkip", Action: "skip", Elapsed: 0},
		{Package: "r", Test: "TestDone", Action: "pass", Elapsed: 5},
		{Package: "r", Test: "TestHung", Action: "timeout", Elapsed: 1500}, // named by the panic
	}
	if !reflect.DeepEqual(times, wantTimes) {
		t.Errorf("times = %+v, want %+v (top-level tests only, in the order they ended)", times, wantTimes)
	}
}
