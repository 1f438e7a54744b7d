package hub

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"channels/internal/fixtures"
)

// FuzzDispatch drives the dispatcher with arbitrary frames, before and
// after login: nothing panics, every frame the hub queues is valid JSON, a
// single message gets at most one reply and a batch exactly one array.
func FuzzDispatch(f *testing.F) {
	gw := newRecordedGateway(f)
	for _, ev := range fixtures.Transcript(f) {
		if ev.Dir != "send" {
			continue
		}
		if ev.JSON != nil {
			f.Add(true, []byte(ev.JSON))
			f.Add(false, []byte(ev.JSON))
		} else {
			f.Add(false, []byte(ev.Raw))
		}
	}
	for _, s := range []string{
		`[{"jsonrpc":"2.0","id":1,"method":"echo","params":{"echoParams":true}},{"jsonrpc":"2.0","result":1}]`,
		`{"jsonrpc":"2.0","id":1,"method":"verto.broadcast","params":{"eventChannel":"0b0e4c1e-6a55-4c39-9d0e-3f7b0c2c7a11.x","localBroadcast":true,"eventSerno":5}}`,
		`{"jsonrpc":"2.0","id":1,"method":"verto.info","params":{"msg":{"to":"a+b|c","body":"|x","inDialog":"yes"}}}`,
		`{"jsonrpc":"2.0","id":{"a":[]},"method":"echo","params":[1,2]}`,
		`{"jsonrpc":"2.0","id":1,"method":"login","params":{"login":"3e1a6d2c-8f0b-4b6a-9c1d-2e3f4a5b6c7d","passwd":"wrong"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"echo"}`,
		`[]`, `[[]]`, `{}`, `null`,
	} {
		f.Add(true, []byte(s))
		f.Add(false, []byte(s))
	}
	f.Fuzz(func(t *testing.T, loggedIn bool, data []byte) {
		h := New(Options{Gateway: gw, Domain: fixtures.Domain, Hostname: fixtures.Hostname, QueueSize: 1 << 12, RequestRate: 1e9, RequestBurst: 1 << 30})
		defer func() { _ = h.Shutdown(context.Background()) }()
		c := newConn(h, nil, "127.0.0.1:1")
		if loggedIn {
			c.handleFrame([]byte(`{"jsonrpc":"2.0","id":1,"method":"login","params":{"login":"` + fixtures.UserA + `","passwd":"` + fixtures.PasswordA + `","sessid":"s"}}`))
			if !c.authed {
				t.Fatal("login failed")
			}
			drain(t, c)
		}
		c.handleFrame(data)
		frames := drain(t, c)
		replies := 0
		for _, fr := range frames {
			var probe struct {
				Method *string `json:"method"`
			}
			if fr[0] == '[' {
				replies++
				continue
			}
			if err := json.Unmarshal(fr, &probe); err != nil {
				t.Fatalf("frame %s: %v", fr, err)
			}
			if probe.Method == nil {
				replies++
			}
		}
		trimmed := bytes.TrimSpace(data)
		if len(trimmed) > 0 && trimmed[0] == '[' && json.Valid(trimmed) && replies != 1 {
			t.Fatalf("batch %q got %d replies", data, replies)
		}
		if replies > 1 {
			t.Fatalf("%q got %d replies", data, replies)
		}
	})
}

// drain takes every queued frame (skipping the close marker), checking
// that each is valid JSON.
func drain(t *testing.T, c *conn) [][]byte {
	t.Helper()
	var out [][]byte
	for _, fr := range c.out.take(nil) {
		if fr == nil {
			continue
		}
		if !json.Valid(fr) {
			t.Fatalf("invalid frame queued: %q", fr)
		}
		out = append(out, fr)
	}
	return out
}
