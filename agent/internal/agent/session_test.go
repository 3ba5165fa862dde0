package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/hostplane/hostplane/agent/internal/config"
	"github.com/hostplane/hostplane/agent/internal/console"
	"github.com/hostplane/hostplane/internal/consoletoken"
)

// TestConsolePortTakenNamesTheSetting: the console's port held by another
// program (a second make run's agent on 8423) disables the console with an
// error that says which flag and variable choose another port.
func TestConsolePortTakenNamesTheSetting(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	cfg := config.Default()
	cfg.DataDir, cfg.ConsoleListen = t.TempDir(), held.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cons := console.New(console.Config{Listen: cfg.ConsoleListen})
	noCert := func() (*tls.Certificate, error) { return nil, errors.New("not enrolled") }
	err = startConsole(ctx, cfg, cons, noCert, consoletoken.NewVerifier("n1", nil))
	if err == nil {
		cons.Close()
		t.Fatalf("the console started on %s, which another listener holds", cfg.ConsoleListen)
	}
	for _, want := range []string{cfg.ConsoleListen, "address already in use", "--console-listen", "HOSTPLANE_AGENT_CONSOLE_LISTEN"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}
