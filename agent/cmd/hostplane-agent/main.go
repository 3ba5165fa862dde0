// Command hostplane-agent runs the hostplane node agent.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/hostplane/hostplane/agent/internal/agent"
	"github.com/hostplane/hostplane/agent/internal/config"
)

func main() {
	cfg := config.Default()
	fs := flag.NewFlagSet("hostplane-agent", flag.ExitOnError)
	configFile := fs.String("config", "", "JSON config file (applied before HOSTPLANE_AGENT_* variables and flags)")
	// Flags are parsed twice: first to find -config, then over file and env values.
	cfg.RegisterFlags(fs)
	_ = fs.Parse(os.Args[1:])
	if *configFile != "" {
		if err := cfg.LoadFile(*configFile); err != nil {
			fmt.Fprintln(os.Stderr, "hostplane-agent:", err)
			os.Exit(2)
		}
	}
	if err := cfg.LoadEnv(os.Getenv); err != nil {
		fmt.Fprintln(os.Stderr, "hostplane-agent:", err)
		os.Exit(2)
	}
	fs2 := flag.NewFlagSet("hostplane-agent", flag.ExitOnError)
	fs2.String("config", *configFile, "")
	cfg.RegisterFlags(fs2)
	_ = fs2.Parse(os.Args[1:])

	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := agent.Run(ctx, cfg, log); err != nil {
		log.Error("agent stopped", "err", err)
		os.Exit(1)
	}
}
