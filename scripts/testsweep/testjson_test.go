package main

import (
	"reflect"
	"strings"
	"testing"
)

// A go test -json stream (go 1.26's events, shortened): package p passed,
// q failed one subtest, r was cut off by its -timeout mid-test, s did not
// build; one line is go's own error, not an event.
const testJSONStream = `{"Action":"start","Package":"p"}
{"Action":"run","Package":"p","Test":"TestOK"}
{"Action":"output","Package":"p","Test":"TestOK","Output":"=== RUN   TestOK\n"}
{"Action":"output","Package":"p","Test":"TestOK","Output":"    a_test.go:3: noise of a passing test\n"}
{"Action":"output","Package":"p","Test":"TestOK/sub","Output":"    a_test.go:3: sub noise\n"}
{"Action":"pass","Package":"p","Test":"TestOK/sub","Elapsed":1.5}
{"Action":"output","Package":"p","Test":"TestOK","Output":"--- PASS: TestOK (2.25s)\n"}
{"Action":"pass","Package":"p","Test":"TestOK","Elapsed":2.25}
{"Action":"output","Package":"p","Output":"PASS\n"}
{"Action":"output","Package":"p","Output":"ok  \tp\t2.3s\n"}
{"Action":"pass","Package":"p","Elapsed":2.3}
{"Action":"output","Package":"q","Test":"TestBad","Output":"=== RUN   TestBad\n"}
{"Action":"output","Package":"q","Test":"TestBad/good","Output":"    q_test.go:4: good sub\n"}
{"Action":"pass","Package":"q","Test":"TestBad/good","Elapsed":0}
{"Action":"output","Package":"q","Test":"TestBad/bad","Output":"    q_test.go:4: the failure\n"}
{"Action":"output","Package":"q","Test":"TestBad/bad","Output":"--- FAIL: TestBad/bad (0.00s)\n"}
{"Action":"fail","Package":"q","Test":"TestBad/bad","Elapsed":0}
{"Action":"output","Package":"q","Test":"TestBad","Output":"--- FAIL: TestBad (3.00s)\n"}
{"Action":"fail","Package":"q","Test":"TestBad","Elapsed":3}
{"Action":"output","Package":"q","Test":"TestFine","Output":"    q_test.go:9: fine's log\n"}
{"Action":"pass","Package":"q","Test":"TestFine","Elapsed":4}
{"Action":"output","Package":"q","Test":"TestSkip","Output":"    q_test.go:5: skipped\n"}
{"Action":"skip","Package":"q","Test":"TestSkip","Elapsed":0}
{"Action":"output","Package":"q","Output":"FAIL\n"}
{"Action":"output","Package":"q","Output":"FAIL\tq\t7.0s\n"}
{"Action":"fail","Package":"q","Elapsed":7}
{"Action":"output","Package":"r","Test":"TestDone","Output":"    r_test.go:2: done's log\n"}
{"Action":"pass","Package":"r","Test":"TestDone","Elapsed":5}
{"Action":"output","Package":"r","Test":"TestHung","Output":"=== RUN   TestHung\n"}
{"Action":"output","Package":"r","Test":"TestHung","Output":"    r_test.go:7: waiting\n"}
{"Action":"output","Package":"r","Output":"panic: test timed out after 25m0s\n"}
{"Action":"output","Package":"r","Output":"\trunning tests:\n"}
{"Action":"output","Package":"r","Output":"\t\tTestHung (25m0s)\n"}
{"Action":"output","Package":"r","Output":"\n"}
go: some error of go's own
{"ImportPath":"s [s.test]","Action":"build-output","Output":"# s [s.test]\n"}
{"ImportPath":"s [s.test]","Action":"build-output","Output":"s_test.go:3:28: undefined: undefined\n"}
{"ImportPath":"s [s.test]","Action":"build-fail"}
{"Action":"output","Package":"s","Output":"FAIL\ts [build failed]\n"}
{"Action":"fail","Package":"s","Elapsed":0,"FailedBuild":"s [s.test]"}
`

func TestTestJSON(t *testing.T) {
	var out strings.Builder
	times, err := testJSON(strings.NewReader(testJSONStream), &out)
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
