package hub

import (
	"net"
	"sync"
	"syscall"
	"testing"

	"channels/internal/connlimit"
)

// acceptedConns records the connections a listener accepts.
type acceptedConns struct {
	net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func (l *acceptedConns) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.mu.Lock()
		l.conns = append(l.conns, c)
		l.mu.Unlock()
	}
	return c, err
}

// TestSendBuffer: a WebSocket's kernel send buffer is Options.SendBuffer
// (Linux keeps twice it), not left to grow to the kernel's 4 MiB for a
// reader that stops reading, beneath the connection limiter's wrapper as
// `channels serve` accepts them.
func TestSendBuffer(t *testing.T) {
	gw := newDirGateway()
	gw.add("a", "pw", "room")
	var ln *acceptedConns
	th := serveHub(t, New(Options{Gateway: gw, Domain: "example.com"}), func(l net.Listener) net.Listener {
		ln = &acceptedConns{Listener: l}
		return connlimit.New(ln, connlimit.Options{})
	})
	dial(t, th, "a", nil).login("a", "pw", "sa")
	ln.mu.Lock()
	defer ln.mu.Unlock()
	if len(ln.conns) != 1 {
		t.Fatalf("%d connections accepted", len(ln.conns))
	}
	raw, err := ln.conns[0].(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var size int
	var serr error
	if err := raw.Control(func(fd uintptr) { size, serr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF) }); err != nil || serr != nil {
		t.Fatal(err, serr)
	}
	if size != 2*DefaultSendBuffer {
		t.Fatalf("send buffer %d bytes, want %d", size, 2*DefaultSendBuffer)
	}
}
