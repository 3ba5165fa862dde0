package main

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// table writes header and the rows that rows writes to tw (tab-separated
// columns) as aligned columns, as every list command prints.
func table(w io.Writer, header string, rows func(tw io.Writer)) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	rows(tw)
	tw.Flush()
}
