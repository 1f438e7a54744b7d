// Package bidi is a minimal WebDriver BiDi client: just enough of the
// protocol (commands and their replies; events are ignored) to drive a
// browser's built-in BiDi endpoint, such as Firefox's
// --remote-debugging-port, from the end-to-end tests. No well-kept Go
// library covers BiDi, and the tests need only a few commands.
package bidi

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/coder/websocket"
)

// Error is a command's error reply.
type Error struct {
	Method  string
	Code    string `json:"error"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return fmt.Sprintf("bidi %s: %s: %s", e.Method, e.Code, e.Message) }

// reply is any message from the remote end; events have no id.
type reply struct {
	ID      *uint64         `json:"id"`
	Type    string          `json:"type"`
	Result  json.RawMessage `json:"result"`
	Code    string          `json:"error"`
	Message string          `json:"message"`
}

// Client is one BiDi WebSocket session; safe for concurrent use.
type Client struct {
	ws   *websocket.Conn
	done chan struct{} // closed when the read loop ends
	err  error         // why it ended; read after done

	mu      sync.Mutex
	next    uint64
	pending map[uint64]chan reply
}

// Dial connects to a BiDi endpoint (ws://host:port/session).
func Dial(ctx context.Context, url string) (*Client, error) {
	ws, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		return nil, fmt.Errorf("bidi dial %s: %w", url, err)
	}
	ws.SetReadLimit(64 << 20) // trees, screenshots and events can be large
	c := &Client{ws: ws, done: make(chan struct{}), pending: map[uint64]chan reply{}}
	go c.read()
	return c, nil
}

func (c *Client) read() {
	defer close(c.done)
	for {
		_, data, err := c.ws.Read(context.Background())
		if err != nil {
			c.err = fmt.Errorf("bidi read: %w", err)
			return
		}
		var r reply
		if err := json.Unmarshal(data, &r); err != nil || r.ID == nil {
			continue // an event, or noise: not waited for
		}
		c.mu.Lock()
		ch := c.pending[*r.ID]
		delete(c.pending, *r.ID)
		c.mu.Unlock()
		if ch != nil {
			ch <- r // buffered: never blocks
		}
	}
}

// Call sends a command and waits for its reply, decoding the result into
// out (unless out is nil).
func (c *Client) Call(ctx context.Context, method string, params, out any) error {
	if params == nil {
		params = struct{}{}
	}
	ch := make(chan reply, 1)
	c.mu.Lock()
	c.next++
	id := c.next
	c.pending[id] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
	}()
	msg, err := json.Marshal(map[string]any{"id": id, "method": method, "params": params})
	if err != nil {
		return fmt.Errorf("bidi %s: %w", method, err)
	}
	if err := c.ws.Write(ctx, websocket.MessageText, msg); err != nil {
		return fmt.Errorf("bidi %s: send: %w", method, err)
	}
	select {
	case r := <-ch:
		if r.Type == "error" {
			return &Error{Method: method, Code: r.Code, Message: r.Message}
		}
		if out == nil {
			return nil
		}
		if err := json.Unmarshal(r.Result, out); err != nil {
			return fmt.Errorf("bidi %s: decode result: %w", method, err)
		}
		return nil
	case <-c.done:
		return fmt.Errorf("bidi %s: connection closed: %w", method, c.err)
	case <-ctx.Done():
		return fmt.Errorf("bidi %s: %w", method, ctx.Err())
	}
}

// Close ends the WebSocket (not the browser).
func (c *Client) Close() error {
	err := c.ws.Close(websocket.StatusNormalClosure, "")
	<-c.done
	return err
}
