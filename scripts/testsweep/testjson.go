package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// testEvent is a line of go test -json (cmd/test2json), with the build
// events of go 1.24 and later (ImportPath, Action build-output).
type testEvent struct {
	Action     string
	Package    string
	ImportPath string
	Test       string
	Elapsed    float64
	Output     string
}

// testTime is a top-level test's wall time, as go test -json reports it.
type testTime struct {
	Package, Test, Action string
	Elapsed               float64
}

// testJSON reads go test -json from r and writes to w what go test without
// -json would have printed for the same run, near enough: a package that
// passed as its "ok" line alone; for any other (failed, or cut off with no
// result: its -timeout's panic, a SIGKILL) its whole output in order, but
// for the output of its top-level tests (subtests included) that passed or
// were skipped. Build output, and any line that is not an event (go test's
// own errors), is written as it comes. It returns every top-level test's
// time, in the order they ended.
func testJSON(r io.Reader, w io.Writer) ([]testTime, error) {
	type line struct {
		test, text string // test: its top-level test, or ""
	}
	var (
		lines  = map[string][]line{} // each package's output not printed yet
		pkgs   []string              // packages with no result yet, in order
		result = map[string]string{} // package+"\x00"+test: its final action
		times  []testTime
	)
	bw := bufio.NewWriter(w)
	// flush prints package p's text once it has a result (or the stream
	// ended: res ""), so the text comes package by package as go test
	// runs them.
	flush := func(p, res string) {
		switch res {
		case "pass", "skip":
			ok := fmt.Sprintf("ok  \t%s\n", p)
			for _, l := range lines[p] {
				if l.test == "" && (strings.HasPrefix(l.text, "ok") || strings.HasPrefix(l.text, "?")) {
					ok = l.text
				}
			}
			bw.WriteString(ok)
		default:
			running := false
			for _, l := range lines[p] {
				if l.test != "" {
					if a := result[p+"\x00"+l.test]; a == "pass" || a == "skip" {
						continue
					}
				}
				// A panic (-timeout's, or a test's) names the tests still
				// running: times of their own, as "timeout". go 1.26's
				// -json gives the panic's lines to the running test
				// (review60 R11: read only from lines of no test, they
				// never made a row); a panic outside any test has none.
				t := strings.TrimSpace(l.text)
				if strings.HasSuffix(t, "running tests:") {
					running = true
				} else if name, d, ok := strings.Cut(t, " ("); running && ok && strings.HasPrefix(name, "Test") && !strings.Contains(name, "/") {
					e, err := time.ParseDuration(strings.TrimSuffix(d, ")"))
					if err == nil {
						times = append(times, testTime{Package: p, Test: name, Action: "timeout", Elapsed: e.Seconds()})
					}
				} else {
					running = false
				}
				bw.WriteString(l.text)
			}
		}
		delete(lines, p)
		bw.Flush()
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	for sc.Scan() {
		var ev testEvent
		b := sc.Bytes()
		if len(b) == 0 || b[0] != '{' || json.Unmarshal(b, &ev) != nil {
			bw.WriteString(sc.Text() + "\n")
			continue
		}
		if ev.Action == "build-output" {
			bw.WriteString(ev.Output)
			continue
		}
		if ev.Package == "" {
			continue
		}
		if _, ok := lines[ev.Package]; !ok {
			lines[ev.Package] = nil
			pkgs = append(pkgs, ev.Package)
		}
		top, _, sub := strings.Cut(ev.Test, "/")
		switch ev.Action {
		case "output":
			lines[ev.Package] = append(lines[ev.Package], line{test: top, text: ev.Output})
		case "pass", "fail", "skip":
			if ev.Test == "" {
				flush(ev.Package, ev.Action)
			} else if !sub {
				result[ev.Package+"\x00"+top] = ev.Action
				times = append(times, testTime{Package: ev.Package, Test: top, Action: ev.Action, Elapsed: ev.Elapsed})
			}
		}
		bw.Flush()
	}
	for _, p := range pkgs {
		if _, ok := lines[p]; ok {
			flush(p, "")
		}
	}
	if err := bw.Flush(); err != nil {
		return times, err
	}
	return times, sc.Err()
}

// testJSONMain is "testsweep testjson TIMES": go test -json on stdin, its
// text on stdout, and each top-level test's time appended to the file TIMES
// ("seconds package test result", one a line).
func testJSONMain(timesFile string) int {
	times, err := testJSON(os.Stdin, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testsweep testjson:", err)
	}
	f, ferr := os.OpenFile(timesFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if ferr != nil {
		fmt.Fprintln(os.Stderr, "testsweep testjson:", ferr)
		return 1
	}
	bw := bufio.NewWriter(f)
	for _, t := range times {
		fmt.Fprintf(bw, "%.1f %s %s %s\n", t.Elapsed, t.Package, t.Test, t.Action)
	}
	if err := bw.Flush(); err != nil {
		ferr = err
	}
	if err := f.Close(); err != nil && ferr == nil {
		ferr = err
	}
	if ferr != nil {
		fmt.Fprintln(os.Stderr, "testsweep testjson:", ferr)
		return 1
	}
	if err != nil {
		return 1
	}
	return 0
}
