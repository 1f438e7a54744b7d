package hub

import (
	"bufio"
	"net"
	"net/http"
)

// sendBuffered hands the WebSocket upgrade a connection whose kernel send
// buffer is size bytes (Options.SendBuffer), so that a reader that stops
// reading pins that much kernel memory, not the kernel's 4 MiB.
type sendBuffered struct {
	http.ResponseWriter
	size int
}

// Hijack implements http.Hijacker.
func (s sendBuffered) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(s.ResponseWriter).Hijack()
	if err != nil {
		return c, rw, err
	}
	nc := c
	for { // beneath TLS, beneath a listener's wrapper (connlimit)
		t, ok := nc.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		nc = t.NetConn()
	}
	if t, ok := nc.(*net.TCPConn); ok {
		_ = t.SetWriteBuffer(s.size) // a socket that refuses keeps the kernel's
	}
	return c, rw, nil
}

// Unwrap gives http.NewResponseController what is beneath.
func (s sendBuffered) Unwrap() http.ResponseWriter { return s.ResponseWriter }
