package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
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
		pkg, test, text string // test: its top-level test, or ""
	}
	var (
		lines  []line
		pkgs   []string
		seen   = map[string]bool{}
		result = map[string]string{} // package or package+"\x00"+test: its final action
		times  []testTime
	)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	for sc.Scan() {
		var ev testEvent
		b := sc.Bytes()
		if len(b) == 0 || b[0] != '{' || json.Unmarshal(b, &ev) != nil {
			lines = append(lines, line{text: sc.Text() + "\n"})
			continue
		}
		if ev.Action == "build-output" {
			lines = append(lines, line{text: ev.Output})
			continue
		}
		if ev.Package == "" {
			continue
		}
		if !seen[ev.Package] {
			seen[ev.Package] = true
			pkgs = append(pkgs, ev.Package)
		}
		top, _, sub := strings.Cut(ev.Test, "/")
		switch ev.Action {
		case "output":
			lines = append(lines, line{pkg: ev.Package, test: top, text: ev.Output})
		case "pass", "fail", "skip":
			if ev.Test == "" {
				result[ev.Package] = ev.Action
			} else if !sub {
				result[ev.Package+"\x00"+top] = ev.Action
				times = append(times, testTime{Package: ev.Package, Test: top, Action: ev.Action, Elapsed: ev.Elapsed})
			}
		}
	}
	bw := bufio.NewWriter(w)
	for _, l := range lines {
		switch {
		case l.pkg == "":
			bw.WriteString(l.text)
		case result[l.pkg] == "pass" || result[l.pkg] == "skip":
			// A package that passed prints its "ok" line (below).
		case l.test != "" && (result[l.pkg+"\x00"+l.test] == "pass" || result[l.pkg+"\x00"+l.test] == "skip"):
		default:
			bw.WriteString(l.text)
		}
	}
	for _, p := range pkgs {
		if result[p] != "pass" && result[p] != "skip" {
			continue
		}
		ok := ""
		for _, l := range lines {
			if l.pkg == p && l.test == "" && (strings.HasPrefix(l.text, "ok") || strings.HasPrefix(l.text, "?")) {
				ok = l.text
			}
		}
		if ok == "" {
			ok = fmt.Sprintf("ok  \t%s\n", p)
		}
		bw.WriteString(ok)
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
