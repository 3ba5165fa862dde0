// Command hostplane-agent runs the hostplane node agent.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/hostplane/hostplane/agent/internal/agent"
	"github.com/hostplane/hostplane/agent/internal/config"
	"github.com/hostplane/hostplane/agent/internal/hosting"
	"github.com/hostplane/hostplane/internal/logsetup"
	"github.com/hostplane/hostplane/internal/sysd"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "hosting" {
		os.Exit(hostingCmd(os.Args[2:]))
	}
	fs := flag.NewFlagSet("hostplane-agent", flag.ExitOnError)
	configFile := fs.String("config", "", "JSON config file whose keys are the flag names below (snake_case keys of earlier releases work too); applied before HOSTPLANE_AGENT_<FLAG_NAME> variables and flags")
	def := config.Default()
	def.RegisterFlags(fs)
	_ = fs.Parse(os.Args[1:])
	cfg, err := config.Load(*configFile, os.Getenv, fs)
	if err != nil {
		fmt.Fprintln(os.Stderr, "hostplane-agent:", err)
		os.Exit(2)
	}

	log := logsetup.New(cfg.LogFormat, cfg.LogLevel, "hostplane-agent", os.Stdout)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err = agent.Run(ctx, cfg, log)
	sysd.Stopping(log)
	if err != nil {
		log.Error("agent stopped", "err", err)
		os.Exit(1)
	}
}

// hostingCmd runs `hostplane-agent hosting reopen-logs [-config FILE]
// [flags]`: the hosting role's nginx and PHP-FPM masters under the
// configured hosting root reopen their logs (logrotate's postrotate in
// /etc/logrotate.d/hostplane-agent). It reads the agent's configuration as
// the agent does (file, HOSTPLANE_AGENT_* variables, flags) for its
// hosting root, and needs no running agent.
func hostingCmd(args []string) int {
	const usage = "usage: hostplane-agent hosting reopen-logs [-config FILE] [agent flags, e.g. -hosting-root DIR]"
	if len(args) == 0 || args[0] != "reopen-logs" {
		fmt.Fprintln(os.Stderr, usage)
		return 2
	}
	fs := flag.NewFlagSet("hostplane-agent hosting reopen-logs", flag.ContinueOnError)
	configFile := fs.String("config", "", "the agent's JSON config file (its hosting-root is used)")
	wait := fs.Duration("wait", 10*time.Second, "how long to wait for every process to reopen its logs")
	def := config.Default()
	def.RegisterFlags(fs)
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintln(os.Stderr, usage)
		return 2
	}
	cfg, err := config.Load(*configFile, os.Getenv, fs)
	if err != nil {
		fmt.Fprintln(os.Stderr, "hostplane-agent hosting reopen-logs:", err)
		return 2
	}
	if !filepath.IsAbs(cfg.HostingRoot) {
		fmt.Fprintf(os.Stderr, "hostplane-agent hosting reopen-logs: hosting-root must be an absolute path, got %q\n", cfg.HostingRoot)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := hosting.ReopenLogs(ctx, hosting.Layout{Root: cfg.HostingRoot}, *wait); err != nil {
		fmt.Fprintln(os.Stderr, "hostplane-agent hosting reopen-logs:", err)
		return 1
	}
	return 0
}
