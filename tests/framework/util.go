package framework

import (
	"net"
	"os"
	"strings"
	"testing"
)

// FreeAddr returns a free 127.0.0.1 address for network ("tcp" or "udp").
func FreeAddr(t testing.TB, network string) string {
	t.Helper()
	a, err := freeAddr(network)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func freeAddr(network string) (string, error) {
	if network == "udp" {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		defer pc.Close()
		return pc.LocalAddr().String(), nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// Tail returns the last n lines of a file (a log), or the error reading it.
func Tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
