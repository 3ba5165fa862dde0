package acmetest

import (
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestAwaitAnswerBounded: Start's wait for pebble ends with an error that
// says what happened, when pebble accepts connections and never answers
// (each try is cut, the wait is bounded) and at once when pebble exits; it
// returns when pebble answers.
func TestAwaitAnswerBounded(t *testing.T) {
	// Accepts and never answers.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	held := make(chan net.Conn, 64)
	defer func() {
		ln.Close()
		for len(held) > 0 {
			(<-held).Close()
		}
	}()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			select {
			case held <- c:
			default:
				c.Close()
			}
		}
	}()
	running := make(chan struct{})
	err = awaitAnswer(http.DefaultTransport, "http://"+ln.Addr().String()+"/dir", 300*time.Millisecond, running, func() error { return nil })
	if err == nil || !strings.Contains(err.Error(), "did not answer") {
		t.Fatalf("a pebble that never answers: %v", err)
	}

	exited := make(chan struct{})
	close(exited)
	err = awaitAnswer(http.DefaultTransport, "http://"+ln.Addr().String()+"/dir", time.Hour, exited, func() error { return errors.New("exit status 1") })
	if err == nil || !strings.Contains(err.Error(), "exited before it answered") || !strings.Contains(err.Error(), "exit status 1") {
		t.Fatalf("a pebble that exited: %v", err)
	}

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	defer srv.Close()
	if err := awaitAnswer(srv.Client().Transport, srv.URL+"/dir", time.Hour, running, func() error { return nil }); err != nil {
		t.Fatalf("a pebble that answers: %v", err)
	}
}
