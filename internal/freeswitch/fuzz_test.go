package freeswitch

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"channels/internal/fixtures"
	"channels/internal/store"
)

// clientIn is relay.lua's reading of a Verto user, written again in Go:
// "id" or "id@<domain>" with id a client id; "" for anything else.
func clientIn(s string) string {
	if user, dom, ok := strings.Cut(s, "@"); ok {
		if dom != fixtures.Domain {
			return ""
		}
		s = user
	}
	if !store.ValidID(s) {
		return ""
	}
	return s
}

// FuzzRelay runs relay.lua on MESSAGE events with arbitrary from, from_user,
// to and body, and arbitrary channels in mod_hash for A and B. It relays
// exactly when the sender ("from", id@<domain>, with from_user equal to
// its id) and the target are clients whose mod_hash entries are one and
// the same valid channel id, with exactly the chat call the message asks for; otherwise
// it makes no chat call and logs one line, which shows no body and
// cannot be split into two.
func FuzzRelay(f *testing.F) {
	relay := script(f, testParams, "relay.lua")
	at := "@" + fixtures.Domain
	a, b := clientA, clientB
	for _, s := range [][6]string{
		{a + at, a, b, secretBody, fixtures.ChannelAB, fixtures.ChannelAB},
		{a + at, a, b + at, secretBody, fixtures.ChannelAB, fixtures.ChannelAB},
		{a + at, a, b, secretBody, fixtures.ChannelAB, fixtures.ChannelC},
		{a + at, b, b, secretBody, fixtures.ChannelAB, fixtures.ChannelAB},
		{a + at, a, clientD, "eA==", fixtures.ChannelAB, ""},
		{a + "@evil.test", a, b, "x", fixtures.ChannelAB, fixtures.ChannelAB},
		{a + at, a, b + "|x", "a|b", "-ERR x", "-ERR x"},
		{a + at, a, b + "\n", "\xff\x00", "", ""},
		{"", "", "", "", "", ""},
	} {
		f.Add(s[0], s[1], s[2], s[3], s[4], s[5])
	}
	f.Fuzz(func(t *testing.T, from, fromUser, to, body, chA, chB string) {
		fs := newFakeFS(t)
		fs.hash[channelsHash+a] = chA
		fs.hash[channelsHash+b] = chB
		ev := messageEvent(a, b, body)
		ev.Headers["from"], ev.Headers["from_user"], ev.Headers["to"] = from, fromUser, to
		calls, logs := runHook(t, relay, ev, fs.execute)

		sender, target := clientIn(from), clientIn(to)
		if !strings.Contains(from, "@") {
			sender = "" // mod_verto's from always has the domain
		}
		relayed := sender != "" && fromUser == sender && target != "" && body != "" &&
			store.ValidID(fs.hash[channelsHash+sender]) && fs.hash[channelsHash+target] == fs.hash[channelsHash+sender]
		if relayed {
			want := []call{
				{"hash", "select/channels/" + sender},
				{"hash", "select/channels/" + target},
				{"chat", "verto|" + sender + "|" + target + at + "|" + body},
			}
			if !slices.Equal(calls, want) || len(logs) != 0 {
				t.Fatalf("calls %q, logs %q; want %q", calls, logs, want)
			}
			return
		}
		for _, c := range calls {
			if c.cmd != "hash" {
				t.Fatalf("refused, yet calls %q", calls)
			}
		}
		if len(logs) != 1 || strings.Count(logs[0], "\n") != 1 || !strings.HasSuffix(logs[0], "\n") {
			t.Fatalf("logs %q", logs)
		}
		if len(body) >= 8 && strings.Contains(logs[0], body) && !strings.Contains(from+fromUser+to+chA+chB, body) {
			t.Fatalf("the body shows in the log: %q", logs[0])
		}
	})
}

var (
	channelAttr = regexp.MustCompile(` channel="([^"]*)"`)
	membersAttr = regexp.MustCompile(` members="([^"]*)"`)
)

// FuzzReportAnswer runs report.lua on a login or a disconnect of A with
// arbitrary answers from /fsapi and from verto_contact. Whatever they say,
// it inserts into mod_hash only A with a valid channel id from an ok
// answer to a successful login, deletes A only when verto_contact finds no
// socket of A left, and sends leave notices — exactly
// verto|A|<member>@<domain>|<unavailable> — only then, only after an ok
// answer that cleared A, and only to the valid client ids other than A
// the answer names, in its order.
func FuzzReportAnswer(f *testing.F) {
	report := script(f, testParams, "report.lua")
	ok := "<?xml version=\"1.0\"?>\n<document type=\"freeswitch/xml\">\n  <section name=\"result\">\n    "
	for _, s := range []struct {
		login         bool
		success       string
		answer, alive string
	}{
		{true, "1", ok + `<result status="ok" channel="` + fixtures.ChannelAB + `"/>`, ""},
		{true, "1", ok + `<result status="ok" channel="x/y"/>`, ""},
		{true, "0", ok + `<result status="ok" channel="` + fixtures.ChannelAB + `"/>`, ""},
		{true, "1", `<result status="not found"/>`, ""},
		{false, "", ok + `<result status="ok" cleared="true" members="` + clientB + "," + clientC + `"/>`, "error/user_not_registered"},
		{false, "", ok + `<result status="ok" cleared="true" members="` + clientA + ",x|y," + clientB + `" truncated="true"/>`, "error/user_not_registered"},
		{false, "", ok + `<result status="ok" cleared="true" members="` + clientB + `"/>`, "verto.rtc/u:x"},
		{false, "", ok + `<result status="ok" members="` + clientB + `"/>`, "error/user_not_registered"},
		{false, "", "", "-ERR verto_contact Command not found!"},
	} {
		f.Add(s.login, s.success, s.answer, s.alive)
	}
	f.Fuzz(func(t *testing.T, login bool, success, answer, alive string) {
		fs := newFakeFS(t)
		fs.post = func(string, string) string { return answer }
		var ev fixtures.Event
		if login {
			ev = loginEvent(clientA, "127.0.0.1:1000", success)
		} else {
			ev = disconnectEvent(clientA, "127.0.0.1:1000")
		}
		calls, _ := runHook(t, report, ev, func(cmd, args string) string {
			if cmd == "verto_contact" {
				return alive
			}
			return fs.execute(cmd, args)
		})
		if len(calls) == 0 || calls[0].cmd != "curl" {
			t.Fatalf("calls %q", calls)
		}
		calls = calls[1:]
		isOK := strings.Contains(answer, `<result status="ok"`)
		var want []call
		if login {
			if m := channelAttr.FindStringSubmatch(answer); isOK && success == "1" && m != nil && store.ValidID(m[1]) {
				want = append(want, call{"hash", "insert/channels/" + clientA + "/" + m[1]})
			}
		} else {
			want = append(want, call{"verto_contact", clientA + "@" + fixtures.Domain})
			if strings.Contains(alive, "error/user_not_registered") {
				want = append(want, call{"hash", "delete/channels/" + clientA})
				if isOK && strings.Contains(answer, ` cleared="true"`) {
					if m := membersAttr.FindStringSubmatch(answer); m != nil {
						for _, id := range strings.Split(m[1], ",") {
							if id != clientA && store.ValidID(id) {
								want = append(want, call{"chat", leaveTo(clientA, id)})
							}
						}
					}
				}
			}
		}
		if !slices.Equal(calls, want) {
			t.Fatalf("calls after the report\n%q\nwant\n%q", calls, want)
		}
	})
}
