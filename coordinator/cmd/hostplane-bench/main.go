// Command hostplane-bench runs the whole-system benchmarks (make bench).
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/bench"
	"github.com/spf13/cobra"
)

func main() {
	o := bench.Options{Out: os.Stdout}
	var profileDir string
	self, _ := os.Executable()
	root := &cobra.Command{
		Use:          "hostplane-bench",
		Short:        "Whole-system benchmarks against baselines measured in the same run",
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if profileDir != "" {
				if o.SideBySide != "" {
					return fmt.Errorf("--profile profiles one build's cluster: not with --side-by-side")
				}
				if err := bench.EnableProfiling(profileDir); err != nil {
					return err
				}
			}
			if o.SideBySide != "" {
				return bench.RunSideBySide(context.Background(), o)
			}
			return bench.Run(context.Background(), o)
		},
	}
	root.Flags().StringVar(&o.BinDir, "bin", filepath.Dir(self), "directory holding hostplane-coordinator")
	root.Flags().IntVar(&o.Clients, "clients", 64, "concurrent clients")
	root.Flags().DurationVar(&o.Duration, "duration", 15*time.Second, "length of each measured phase")
	root.Flags().BoolVar(&o.WritesOnly, "writes-only", false, "stop after the write phases (etcd, then hostplane to the leader and spread)")
	root.Flags().BoolVar(&o.NoEtcd, "no-etcd", false, "skip the etcd baselines (with --writes-only: only hostplane's write phases)")
	root.Flags().IntVar(&o.Rounds, "rounds", 0, "measure the two hostplane write phases in this many rounds of leader, spread, spread, leader (each --duration / (2 × rounds) long), so both meet the same store sizes and moments; 0: the leader phase, then the spread phase")
	root.Flags().DurationVar(&o.Warmup, "warmup", 3*time.Second, "unmeasured writes spread over all nodes before hostplane's first write phase (0: none)")
	root.Flags().BoolVarP(&o.Verbose, "verbose", "v", false, "with --rounds, print each round's phases too")
	root.Flags().DurationVar(&o.TimerSlack, "timer-slack", time.Millisecond, "timer slack (prctl PR_SET_TIMERSLACK) of every server process the benchmark starts (the coordinators, as the shipped unit's TimerSlackNSec=1ms runs them, and etcd and the bare server alike); 0: the kernel's default (50µs), as a process started by hand; the clients keep the default")
	root.Flags().StringVar(&o.SideBySide, "side-by-side", "", "directory of another hostplane-coordinator build: load a cluster of each at once and compare their writes (no etcd)")
	root.Flags().StringVar(&profileDir, "profile", "", "save CPU profiles of each coordinator and of the clients over each measured phase in this directory (<phase>[-<part>]-node<i>.pprof, -client.pprof; node i serves pprof on BENCH_PPROF_BASE_PORT+i+1, a free base unless set; scripts/forward-profile.py accounts a forwarded write's extra CPU from the write phases' profiles); off by default")
	var addr, file string
	bare := &cobra.Command{
		Use: "bare-server", Short: "The bare net/http JSON baseline (started by the benchmark itself)", Hidden: true,
		RunE: func(*cobra.Command, []string) error { return bench.ServeBare(addr, file) },
	}
	bare.Flags().StringVar(&addr, "addr", "127.0.0.1:0", "listen address")
	bare.Flags().StringVar(&file, "file", "", "JSON payload to serve")
	root.AddCommand(bare)
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}
