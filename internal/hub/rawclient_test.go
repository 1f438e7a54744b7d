package hub

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
)

// rawClient is a minimal WebSocket client for benchmarks: one socket, one
// buffer, frames parsed in place, so the load generator costs the shared
// CPU as little as possible. It sends text frames and reads unfragmented
// server frames.
type rawClient struct {
	conn net.Conn
	br   *bufio.Reader
	buf  []byte
}

func dialRaw(wsURL string) (*rawClient, error) {
	u, err := url.Parse(wsURL)
	if err != nil {
		return nil, err
	}
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		return nil, err
	}
	var key [16]byte
	_, _ = rand.Read(key[:])
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
		u.RequestURI(), u.Host, base64.StdEncoding.EncodeToString(key[:]))
	br := bufio.NewReaderSize(conn, 64<<10)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		conn.Close()
		return nil, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		conn.Close()
		return nil, fmt.Errorf("upgrade: %s", resp.Status)
	}
	return &rawClient{conn: conn, br: br, buf: make([]byte, 0, 4096)}, nil
}

// send writes one masked text frame.
func (c *rawClient) send(p []byte) error {
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

// next reads one frame's payload; valid until the next call.
func (c *rawClient) next() ([]byte, error) {
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

func (c *rawClient) close() { _ = c.conn.Close() }

// isEvent reports a verto.event frame.
func isEvent(p []byte) bool {
	return bytes.Contains(p[:min(len(p), 64)], []byte(`"verto.event"`))
}
