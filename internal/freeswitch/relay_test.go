package freeswitch

import (
	"strings"
	"testing"

	"channels/internal/fixtures"
)

// Clients of the relay tests: A and B share a channel, C is in another, D
// is in none (not logged in, or unknown).
const (
	clientA = fixtures.UserA
	clientB = fixtures.UserB
	clientC = fixtures.UserC
	clientD = "00000000-0000-4000-8000-000000000000"
	// secretBody is a body no log line may show.
	secretBody = "c2VjcmV0LWJvZHk="
)

// relayFS is a fakeFS whose mod_hash holds A and B in one channel and C
// in another, as report.lua leaves it once they logged in.
func relayFS(t testing.TB) *fakeFS {
	f := newFakeFS(t)
	f.hash[channelsHash+clientA] = fixtures.ChannelAB
	f.hash[channelsHash+clientB] = fixtures.ChannelAB
	f.hash[channelsHash+clientC] = fixtures.ChannelC
	return f
}

// TestRelayChannelCheck: a message is relayed only when sender and target
// are logged-in clients of one channel, at the cost of two mod_hash
// look-ups; anything else is refused with one warning, which never shows
// the body.
func TestRelayChannelCheck(t *testing.T) {
	relay := script(t, testParams, "relay.lua")
	at := "@" + fixtures.Domain
	tests := []struct {
		name     string
		from, to string
		noHash   bool   // mod_hash not loaded
		want     string // the chat call; "" for none
		log      string // what the warning says
	}{
		{"same channel", clientA, clientB, false, "verto|" + clientA + "|" + clientB + at + "|" + secretBody, ""},
		{"same channel, target with domain", clientB, clientA + at, false, "verto|" + clientB + "|" + clientA + at + "|" + secretBody, ""},
		{"other channel", clientA, clientC, false, "", "to " + clientC + ": not a logged-in client of the sender's channel"},
		{"from the other channel", clientC, clientA, false, "", "to " + clientA + ": not a logged-in client of the sender's channel"},
		{"unknown target", clientA, clientD, false, "", "to " + clientD + ": not a logged-in client of the sender's channel"},
		{"unknown sender", clientD, clientA, false, "", "from " + clientD + at + " to " + clientA + ": sender's channel unknown ()"},
		{"to oneself", clientA, clientA, false, "verto|" + clientA + "|" + clientA + at + "|" + secretBody, ""},
		{"mod_hash not loaded", clientA, clientB, true, "", "sender's channel unknown (-ERR hash Command not found!?)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := relayFS(t)
			f.noHash = tt.noHash
			calls, logs := runHook(t, relay, messageEvent(tt.from, tt.to, secretBody), f.execute)
			var chats []string
			for _, c := range calls {
				if c.cmd == "chat" {
					chats = append(chats, c.args)
				} else if c.cmd != "hash" || !strings.HasPrefix(c.args, "select/channels/") {
					t.Errorf("call %v", c)
				}
			}
			if tt.want != "" {
				if len(chats) != 1 || chats[0] != tt.want || len(calls) != 3 || len(logs) != 0 {
					t.Errorf("calls %v, logs %q; want two look-ups and %q", calls, logs, tt.want)
				}
				return
			}
			if len(chats) != 0 || len(logs) != 1 || !strings.Contains(logs[0], tt.log) {
				t.Errorf("chats %q, logs %q; want one warning saying %q", chats, logs, tt.log)
			}
			if len(logs) > 0 && (!strings.HasPrefix(logs[0], "warning: channels relay: ") || strings.Contains(logs[0], secretBody)) {
				t.Errorf("log %q", logs[0])
			}
		})
	}
}

// TestRelayRefuses: events that are not a client's message, or whose
// sender, target or body are wrong, are refused before any look-up. The
// sender is mod_verto's "from": a from_user that differs from it (a
// client can set it: mod_verto copies msg's from_* keys into the event,
// and "from_user[0]" replaces the value) is refused, not believed.
func TestRelayRefuses(t *testing.T) {
	relay := script(t, testParams, "relay.lua")
	body := secretBody
	tests := []struct {
		name string
		edit func(h map[string]string)
		body *string
		log  bool
	}{
		{"other domain", func(h map[string]string) { h["to"] += "@evil.test" }, &body, true},
		{"empty user before domain", func(h map[string]string) { h["to"] = "@" + fixtures.Domain }, &body, true},
		{"no to", func(h map[string]string) { delete(h, "to") }, &body, true},
		{"to not a client id", func(h map[string]string) { h["to"] = "1000" }, &body, true},
		{"to in upper case", func(h map[string]string) { h["to"] = strings.ToUpper(clientB) }, &body, true},
		{"to with a slash", func(h map[string]string) { h["to"] = clientB + "/x" }, &body, true},
		{"to with two domains", func(h map[string]string) { h["to"] = clientB + "@" + fixtures.Domain + "@" + fixtures.Domain }, &body, true},
		{"no from_user", func(h map[string]string) { delete(h, "from_user") }, &body, true},
		{"from_user spoofed", func(h map[string]string) { h["from_user"] = clientB }, &body, true},
		{"no from", func(h map[string]string) { delete(h, "from") }, &body, true},
		{"from of another domain", func(h map[string]string) { h["from"] = clientA + "@evil.test" }, &body, true},
		{"no body", func(map[string]string) {}, nil, true},
		{"empty body", func(map[string]string) {}, new(string), true},
		{"pipe in to", func(h map[string]string) { h["to"] = "a|b" }, &body, true},
		{"newline in to", func(h map[string]string) { h["to"] = clientB + "\n[ERR] forged" }, &body, true},
		{"chat's own event", func(h map[string]string) { h["proto"], h["dest_proto"] = "global", "verto" }, &body, false},
		{"SIP message", func(h map[string]string) { h["proto"] = "sip" }, &body, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := messageEvent(clientA, clientB, body)
			ev.Body = tt.body
			tt.edit(ev.Headers)
			calls, logs := runHook(t, relay, ev, relayFS(t).execute)
			if len(calls) != 0 {
				t.Errorf("calls %v", calls)
			}
			if (len(logs) > 0) != tt.log || len(logs) > 1 {
				t.Errorf("logs %q, want a log line: %v", logs, tt.log)
			}
			for _, l := range logs {
				if strings.Contains(l, secretBody) || strings.Count(l, "\n") != 1 {
					t.Errorf("log %q", l)
				}
			}
		})
	}
}

// BenchmarkRelay measures what mod_lua does per MESSAGE event — a new Lua
// state, relay.lua loaded and run — for a relayed message (two mod_hash
// look-ups and the chat call, the APIs answered in Go) and for a refused
// one (another channel).
func BenchmarkRelay(b *testing.B) {
	relay := script(b, testParams, "relay.lua")
	for _, bb := range []struct{ name, to string }{{"relayed", clientB}, {"refused", clientC}} {
		b.Run(bb.name, func(b *testing.B) {
			f := relayFS(b)
			ev := messageEvent(clientA, bb.to, secretBody)
			for b.Loop() {
				runHook(b, relay, ev, f.execute)
			}
			f.chats = nil
		})
	}
}
