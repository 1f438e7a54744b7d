package hubtest

import (
	"net"
	"syscall"
)

// DialRawWith is DialRaw over a socket d makes: d.LocalAddr picks the
// client's address on 127.0.0.0/8 (every address there is the loopback's,
// so one machine can play several clients, each with its own per-address
// budgets), and d.Control can shrink its buffers (ReceiveBuffer) so that a
// client that stops reading fills them after a few frames.
func DialRawWith(wsURL string, d *net.Dialer) (*Raw, error) {
	return dialRaw(wsURL, d, 4096, 512) // small: many of them, mostly not reading
}

// ReceiveBuffer is a net.Dialer Control that sets the socket's receive
// buffer (SO_RCVBUF) to n bytes before it connects, so that the window
// the peer sees stays that small (the kernel doubles n and keeps a
// minimum).
func ReceiveBuffer(n int) func(network, address string, c syscall.RawConn) error {
	return func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, n)
		}); err != nil {
			return err
		}
		return serr
	}
}

// NetConn is the client's socket, for a load generator that watches its
// state without reading from it.
func (c *Raw) NetConn() net.Conn { return c.conn }
