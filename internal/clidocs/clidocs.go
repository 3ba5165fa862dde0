// Package clidocs generates man pages and shell completions from a cobra command
// tree, for the packages (make packages) to ship.
package clidocs

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// Command is a hidden `gen-docs` subcommand of root: --man DIR writes one man
// page per command in the given section, --completions DIR writes bash, zsh and
// fish completion scripts named after root.
func Command(root *cobra.Command, section string) *cobra.Command {
	var manDir, complDir string
	cmd := &cobra.Command{
		Use: "gen-docs", Short: "Write man pages and shell completions (for packaging)", Hidden: true, Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if manDir == "" && complDir == "" {
				return fmt.Errorf("give --man DIR and/or --completions DIR")
			}
			if manDir != "" {
				if err := Man(root, section, manDir); err != nil {
					return err
				}
			}
			if complDir != "" {
				return Completions(root, complDir)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&manDir, "man", "", "directory for the man pages")
	cmd.Flags().StringVar(&complDir, "completions", "", "directory for the bash, zsh and fish completions")
	return cmd
}

// Man writes root's man pages (without a generation date, so builds repeat).
func Man(root *cobra.Command, section, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	root.DisableAutoGenTag = true
	return doc.GenManTree(root, &doc.GenManHeader{Title: root.Name(), Section: section, Source: "hostplane", Manual: "hostplane manual"}, dir)
}

// Completions writes NAME.bash, _NAME (zsh) and NAME.fish into dir.
func Completions(root *cobra.Command, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	n := root.Name()
	gens := []struct {
		file string
		gen  func(string) error
	}{
		{n + ".bash", func(p string) error { return root.GenBashCompletionFileV2(p, true) }},
		{"_" + n, root.GenZshCompletionFile},
		{n + ".fish", func(p string) error { return root.GenFishCompletionFile(p, true) }},
	}
	for _, g := range gens {
		if err := g.gen(filepath.Join(dir, g.file)); err != nil {
			return fmt.Errorf("%s: %w", g.file, err)
		}
	}
	return nil
}
