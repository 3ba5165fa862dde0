package bench

import (
	"net"
	"strings"
	"testing"
	"time"
)

// hangingListener accepts connections and never answers them (a coordinator
// stopped by SIGSTOP, a wedged metrics listener); it closes with the test.
func hangingListener(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	return "http://" + ln.Addr().String()
}

// TestReadsOfAHangingEndpointFail: every read the benchmark makes of an
// endpoint (the read phases' sample, the start-up probe, /metrics) ends
// with an error naming the endpoint when it accepts and never answers,
// instead of hanging the run.
func TestReadsOfAHangingEndpointFail(t *testing.T) {
	defer func(d time.Duration) { readTimeout = d }(readTimeout)
	readTimeout = 300 * time.Millisecond
	base := hangingListener(t)
	for _, c := range []struct {
		what string
		read func() error
		url  string
	}{
		{"fetch", func() error { _, err := fetch(base+"/v1/servers", "k"); return err }, base + "/v1/servers"},
		{"waitHTTP", func() error { return waitHTTP(base+"/healthz", time.Second) }, base + "/healthz"},
		{"metrics", func() error { _, err := readMetrics(base + "/metrics"); return err }, base + "/metrics"},
	} {
		errc := make(chan error, 1)
		go func() { errc <- c.read() }()
		select {
		case err := <-errc:
			if err == nil || !strings.Contains(err.Error(), c.url) {
				t.Errorf("%s of an endpoint that never answers: %v; want an error naming %s", c.what, err, c.url)
			}
			t.Logf("%s: %v", c.what, err)
		case <-time.After(time.Minute):
			t.Fatalf("%s of an endpoint that never answers: still waiting after a minute", c.what)
		}
	}
}
