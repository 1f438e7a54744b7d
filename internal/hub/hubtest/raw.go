// Package hubtest holds what the tests and benchmarks of the hub and of
// the cluster share: a minimal Verto-over-WebSocket client for load.
package hubtest

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
)

// Raw is a minimal WebSocket client for benchmarks: one socket, one
// buffer, frames parsed in place, so that the load generator costs the
// shared CPU as little as possible. It sends text frames and reads
// unfragmented server frames.
type Raw struct {
	conn net.Conn
	br   *bufio.Reader
	buf  []byte
}

// DialRaw opens a WebSocket to wsURL ("ws://host/verto").
func DialRaw(wsURL string) (*Raw, error) { return dialRaw(wsURL, &net.Dialer{}, 64<<10, 4096) }

// dialRaw opens a WebSocket to wsURL over a socket d makes, reading
// through a buffer of readBuf bytes, with a frame buffer of frameBuf.
func dialRaw(wsURL string, d *net.Dialer, readBuf, frameBuf int) (*Raw, error) {
	u, err := url.Parse(wsURL)
	if err != nil {
		return nil, err
	}
	conn, err := d.Dial("tcp", u.Host)
	if err != nil {
		return nil, err
	}
	var key [16]byte
	_, _ = rand.Read(key[:])
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
		u.RequestURI(), u.Host, base64.StdEncoding.EncodeToString(key[:]))
	br := bufio.NewReaderSize(conn, readBuf)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		conn.Close()
		return nil, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		conn.Close()
		return nil, fmt.Errorf("upgrade: %s", resp.Status)
	}
	return &Raw{conn: conn, br: br, buf: make([]byte, 0, frameBuf)}, nil
}

// Send writes one masked text frame.
func (c *Raw) Send(p []byte) error {
	hdr := []byte{0x81, 0}
	switch {
	case len(p) < 126:
		hdr[1] = 0x80 | byte(len(p))
	case len(p) < 1<<16:
		hdr[1] = 0x80 | 126
		hdr = binary.BigEndian.AppendUint16(hdr, uint16(len(p)))
	default:
		hdr[1] = 0x80 | 127
		hdr = binary.BigEndian.AppendUint64(hdr, uint64(len(p)))
	}
	var mask [4]byte
	_, _ = rand.Read(mask[:])
	hdr = append(hdr, mask[:]...)
	out := append(hdr, p...)
	for i := range p {
		out[len(hdr)+i] ^= mask[i%4]
	}
	_, err := c.conn.Write(out)
	return err
}

// Next reads one frame's payload; it is valid until the next call. A close
// frame is io.EOF.
func (c *Raw) Next() ([]byte, error) {
	var h [2]byte
	if _, err := io.ReadFull(c.br, h[:]); err != nil {
		return nil, err
	}
	n := int(h[1] & 0x7f)
	switch n {
	case 126:
		var l [2]byte
		if _, err := io.ReadFull(c.br, l[:]); err != nil {
			return nil, err
		}
		n = int(binary.BigEndian.Uint16(l[:]))
	case 127:
		var l [8]byte
		if _, err := io.ReadFull(c.br, l[:]); err != nil {
			return nil, err
		}
		n = int(binary.BigEndian.Uint64(l[:]))
	}
	if cap(c.buf) < n {
		c.buf = make([]byte, n)
	}
	c.buf = c.buf[:n]
	if _, err := io.ReadFull(c.br, c.buf); err != nil {
		return nil, err
	}
	if h[0]&0x0f == 0x8 {
		return nil, io.EOF // close frame
	}
	return c.buf, nil
}

// Login logs in with passwd and sessid and, when channel is not empty,
// subscribes to it, then reads the replies (login result, clientReady,
// subscribe result).
func (c *Raw) Login(login, passwd, sessid, channel string) error {
	msgs := []string{`{"jsonrpc":"2.0","id":1,"method":"login","params":{"login":` + strconv.Quote(login) +
		`,"passwd":` + strconv.Quote(passwd) + `,"sessid":` + strconv.Quote(sessid) + `}}`}
	if channel != "" {
		msgs = append(msgs, `{"jsonrpc":"2.0","id":2,"method":"verto.subscribe","params":{"eventChannel":`+strconv.Quote(channel)+`}}`)
	}
	for _, m := range msgs {
		if err := c.Send([]byte(m)); err != nil {
			return err
		}
	}
	for range len(msgs) + 1 {
		if _, err := c.Next(); err != nil {
			return err
		}
	}
	return nil
}

// Close closes the socket.
func (c *Raw) Close() { _ = c.conn.Close() }

// DialRawFrom is DialRaw from the local address ip (one of 127.0.0.0/8,
// say), as browsers come from addresses of their own: the hub's budgets
// per address then see what they would in production.
func DialRawFrom(wsURL string, ip net.IP) (*Raw, error) {
	return dialRaw(wsURL, &net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}}, 64<<10, 4096)
}

// SpreadIP is the i-th of a range of loopback addresses (127.10.0.1 on),
// 250 to a /24, for clients that each come from an address of their own.
func SpreadIP(i int) net.IP { return net.IPv4(127, 10, byte(i/250), byte(i%250+1)) }
