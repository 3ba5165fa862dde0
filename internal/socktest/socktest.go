// Package socktest serves HTTP on a unix socket for tests: a coordinator's
// admin socket or an agent's local API that the code under test dials.
package socktest

import (
	"net"
	"net/http"
	"testing"
)

// Serve serves h on a new unix socket at path until the test ends, and
// returns path.
func Serve(t testing.TB, path string, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return path
}
