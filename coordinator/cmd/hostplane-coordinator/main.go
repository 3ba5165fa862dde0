// Command hostplane-coordinator runs a hostplane coordinator (a Raft member serving
// the public API). It only parses configuration and calls server.Run.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/hostplane/hostplane/coordinator/internal/server"
	"github.com/hostplane/hostplane/internal/clidocs"
	"github.com/hostplane/hostplane/pkg/version"
	"github.com/spf13/cobra"
)

func main() {
	root := &cobra.Command{
		Use:          "hostplane-coordinator",
		Short:        "hostplane coordinator: Raft-replicated state and the public /v1 API",
		SilenceUsage: true,
	}
	cfg := server.Defaults()
	var configFile string
	run := &cobra.Command{
		Use:   "run",
		Short: "Run a coordinator (single-node embedded default unless configured otherwise)",
		Long: `Run a coordinator.

Settings are layered: built-in defaults, then the --config file (a JSON object whose
keys are the flag names below), then HOSTPLANE_<FLAG_NAME> environment variables
(e.g. HOSTPLANE_API_ADDR), then flags given on the command line.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := server.Load(cmd.Flags(), configFile)
			if err != nil {
				return err
			}
			if err := c.Validate(); err != nil {
				return fmt.Errorf("invalid configuration:\n%w", err)
			}
			if os.Getenv("GOGC") == "" {
				// A coordinator's heap is small (tens of MB) and its
				// writes allocate briskly: collecting at 3x the live heap
				// instead of 2x costs a few MB and about 8 % less CPU per
				// replicated write. GOGC set in the environment wins.
				debug.SetGCPercent(200)
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return server.Run(ctx, c, server.NewLogger(c, os.Stdout), os.Stdout)
		},
	}
	run.Flags().StringVar(&configFile, "config", "", "JSON config file (keys are flag names)")
	server.BindFlags(run.Flags(), &cfg)
	root.AddCommand(run, &cobra.Command{
		Use: "version", Short: "Print the version",
		Run: func(*cobra.Command, []string) { fmt.Println(version.Version) },
	})
	root.AddCommand(clidocs.Command(root, "8"))
	if err := root.Execute(); err != nil {
		os.Exit(1)
	}
}
