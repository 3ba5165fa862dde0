package main

import (
	"fmt"
	"io"
	"reflect"
	"text/tabwriter"
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
