// Command eppd is hostplane's EPP test and staging registry (package
// tests/eppd): EPP over TLS on --addr, failure injection on --admin.
//
//	eppd --addr 127.0.0.1:7000 --admin 127.0.0.1:7001 --data-dir /var/lib/eppd \
//	     --tld test --tld example --client reg-a:secret-a --client reg-b:secret-b
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/hostplane/hostplane/tests/eppd"
)

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	var cfg eppd.Config
	var tlds, clients list
	fs := flag.NewFlagSet("eppd", flag.ExitOnError)
	fs.StringVar(&cfg.Addr, "addr", "127.0.0.1:700", "EPP listen address (TLS)")
	fs.StringVar(&cfg.AdminAddr, "admin", "", "admin HTTP listen address for failure injection, loopback only (empty: none)")
	fs.StringVar(&cfg.DataDir, "data-dir", "", "directory of registry.db and the generated certificate (required)")
	fs.StringVar(&cfg.CertFile, "cert", "", "TLS certificate (PEM); empty: a self-signed one generated into --data-dir")
	fs.StringVar(&cfg.KeyFile, "key", "", "TLS key (PEM), with --cert")
	fs.StringVar(&cfg.ClientCAFile, "client-ca", "", "require client certificates signed by these CAs (PEM)")
	fs.Var(&tlds, "tld", "an offered TLD without the dot (repeatable)")
	fs.Var(&clients, "client", "a registrar account as clID:password (repeatable)")
	fs.DurationVar(&cfg.TransferPending, "transfer-pending", 0, "keep transfer requests pending this long for the losing registrar, then approve (0: complete at once)")
	fs.DurationVar(&cfg.IdleTimeout, "idle-timeout", 10*time.Minute, "close sessions idle this long")
	verbose := fs.Bool("v", false, "log every command")
	fs.Parse(os.Args[1:])
	cfg.TLDs = tlds
	cfg.Clients = map[string]string{}
	for _, c := range clients {
		id, pw, ok := strings.Cut(c, ":")
		if !ok {
			fmt.Fprintf(os.Stderr, "eppd: --client %q: want clID:password\n", c)
			os.Exit(2)
		}
		cfg.Clients[id] = pw
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if err := cfg.Validate(); err != nil {
		fmt.Fprintln(os.Stderr, "eppd:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := eppd.Run(ctx, cfg, func(s *eppd.Server) {
		fmt.Printf("eppd: listening epp=%s admin=%s\n", cfg.Addr, cfg.AdminAddr)
	}); err != nil {
		fmt.Fprintln(os.Stderr, "eppd:", err)
		os.Exit(1)
	}
}
