package main

import (
	"fmt"
	"io"
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
