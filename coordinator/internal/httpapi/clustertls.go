package httpapi

import (
	"bufio"
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// SniffTLS lets the API listener carry both the public plain-HTTP API and the
// coordinators' forwarding over mutual TLS (the cluster CA of the Raft
// transport): a connection whose first byte opens a TLS handshake is served as
// TLS with cfg (which demands a certificate from the cluster CA), any other as
// plain HTTP. The first byte is awaited off the accept loop, for at most
// timeout, so a silent client holds up nobody.
func SniffTLS(ln net.Listener, cfg *tls.Config, timeout time.Duration, metrics *Metrics) net.Listener {
	s := &sniffListener{Listener: ln, cfg: cfg, timeout: timeout, conns: make(chan net.Conn), done: make(chan struct{}), metrics: metrics}
	go s.acceptLoop()
	return s
}

type sniffListener struct {
	net.Listener
	cfg     *tls.Config
	timeout time.Duration
	metrics *Metrics
	conns   chan net.Conn
	done    chan struct{}
	once    sync.Once
	err     atomic.Value // error of the underlying Accept
}

func (s *sniffListener) acceptLoop() {
	for {
		c, err := s.Listener.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(5 * time.Millisecond)
				continue
			}
			s.err.Store(err)
			s.Close()
			return
		}
		go s.sniff(c)
	}
}

func (s *sniffListener) sniff(c net.Conn) {
	_ = c.SetReadDeadline(time.Now().Add(s.timeout))
	br := bufio.NewReaderSize(c, 1)
	first, err := br.Peek(1)
	if err != nil {
		c.Close()
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	pc := &peekedConn{Conn: c, r: br}
	var out net.Conn = pc
	if first[0] == 0x16 { // TLS record type: handshake
		out = tls.Server(pc, s.cfg)
		if s.metrics != nil {
			s.metrics.clusterTLSConns.Inc()
		}
	}
	select {
	case s.conns <- out:
	case <-s.done:
		c.Close()
	}
}

func (s *sniffListener) Accept() (net.Conn, error) {
	select {
	case c := <-s.conns:
		return c, nil
	case <-s.done:
		if err, ok := s.err.Load().(error); ok {
			return nil, err
		}
		return nil, net.ErrClosed
	}
}

func (s *sniffListener) Close() error {
	var err error
	s.once.Do(func() {
		close(s.done)
		err = s.Listener.Close()
	})
	return err
}

// peekedConn reads first what the sniffer peeked.
type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (p *peekedConn) Read(b []byte) (int, error) { return p.r.Read(b) }
