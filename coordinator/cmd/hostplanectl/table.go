package main

import (
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"text/tabwriter"
	"unicode"
	"unicode/utf8"
)

// table writes header and one row per item (row writes its tab-separated
// columns to tw) as aligned columns, as every list command prints.
func table[T any](w io.Writer, header string, items []T, row func(tw io.Writer, item T)) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	for _, it := range items {
		row(tw, it)
	}
	tw.Flush()
}

// printf is fmt.Printf for what a person reads, and fprintf fmt.Fprintf:
// every string value (and each string of a []string, and an error's text)
// is written through printable, single-line. Customer, registry, node and
// PowerDNS text reaches these lines (a domain's status reason, a zone's
// last error, a server's label); with it none writes a control, bidi or
// separator character to the terminal or breaks its line into a forged row.
// Text that keeps its newlines (a ticket's thread) is printed with fmt and
// printable(s, true) instead.
func printf(format string, args ...any) { fmt.Printf(format, printableArgs(args)...) }

func fprintf(w io.Writer, format string, args ...any) {
	fmt.Fprintf(w, format, printableArgs(args)...)
}

func printableArgs(args []any) []any {
	out := make([]any, len(args))
	for i, a := range args {
		out[i] = printableArg(a)
	}
	return out
}

func printableArg(a any) any {
	if err, ok := a.(error); ok {
		return printable(err.Error(), false)
	}
	v := reflect.ValueOf(a)
	switch {
	case v.Kind() == reflect.String:
		return printable(v.String(), false)
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.String:
		ss := make([]string, v.Len())
		for i := range ss {
			ss[i] = printable(v.Index(i).String(), false)
		}
		return ss
	}
	return a
}

// writeJSON writes v as --json prints it (indented, one value, a newline)
// with every C1 control and bidi control written as its JSON \u escape:
// encoding/json escapes C0 controls and U+2028/2029 but writes these raw,
// and an operator may read --json on a terminal. A non-ASCII character
// stands only inside a JSON string, where \uXXXX is that character, so a
// JSON reader gets the same strings, the customer's text as it is.
func writeJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	out := make([]byte, 0, len(b)+1)
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		if r >= 0x80 && r <= 0x9f || unicode.Is(unicode.Bidi_Control, r) {
			out = fmt.Appendf(out, `\u%04x`, r)
		} else {
			out = append(out, b[:size]...)
		}
		b = b[size:]
	}
	_, err = w.Write(append(out, '\n'))
	return err
}
