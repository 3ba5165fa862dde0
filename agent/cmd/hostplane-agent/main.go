// Command hostplane-agent runs the hostplane node agent.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/hostplane/hostplane/agent/internal/agent"
	"github.com/hostplane/hostplane/agent/internal/config"
	"github.com/hostplane/hostplane/internal/logsetup"
	"github.com/hostplane/hostplane/internal/sysd"
)

func main() {
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
