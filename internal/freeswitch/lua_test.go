package freeswitch

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	lua "github.com/yuin/gopher-lua"

	"channels/internal/directory"
	"channels/internal/fixtures"
	"channels/internal/fsapi"
	"channels/internal/store"
	"channels/internal/store/storetest"
)

// luaGlobalAfter runs the line of code that assigns name (as a local or a
// global) and returns the string Lua reads.
func luaGlobalAfter(t *testing.T, code []byte, name string) string {
	t.Helper()
	var line string
	for _, l := range strings.Split(string(code), "\n") {
		if rest, ok := strings.CutPrefix(l, "local "+name+" = "); ok {
			line = name + " = " + rest
			break
		}
		if strings.HasPrefix(l, name+" = ") {
			line = l
			break
		}
	}
	if line == "" {
		t.Fatalf("no assignment to %s in\n%s", name, code)
	}
	L := lua.NewState()
	defer L.Close()
	if err := L.DoString(line); err != nil {
		t.Fatalf("%v: %s", err, line)
	}
	v, ok := L.GetGlobal(name).(lua.LString)
	if !ok {
		t.Fatalf("%s is not a string", name)
	}
	return string(v)
}

// call is one freeswitch.API():execute the script made.
type call struct{ cmd, args string }

// runHook runs a script as mod_lua runs a hook: with the global `event`
// and the freeswitch table (API():execute, consoleLog), in a fresh Lua
// state, the script loaded anew. execute answers with reply. A Lua error
// fails t: the scripts must run to their end on any event.
func runHook(t testing.TB, script []byte, ev fixtures.Event, reply func(cmd, args string) string) (calls []call, logs []string) {
	t.Helper()
	L := lua.NewState()
	defer L.Close()
	evt := L.NewTable()
	L.SetField(evt, "getHeader", L.NewFunction(func(L *lua.LState) int {
		if v, ok := ev.Headers[L.CheckString(2)]; ok {
			L.Push(lua.LString(v))
		} else {
			L.Push(lua.LNil)
		}
		return 1
	}))
	L.SetField(evt, "getBody", L.NewFunction(func(L *lua.LState) int {
		if ev.Body != nil {
			L.Push(lua.LString(*ev.Body))
		} else {
			L.Push(lua.LNil)
		}
		return 1
	}))
	L.SetGlobal("event", evt)
	api := L.NewTable()
	L.SetField(api, "execute", L.NewFunction(func(L *lua.LState) int {
		c := call{L.CheckString(2), L.CheckString(3)}
		calls = append(calls, c)
		L.Push(lua.LString(reply(c.cmd, c.args)))
		return 1
	}))
	fs := L.NewTable()
	L.SetField(fs, "API", L.NewFunction(func(L *lua.LState) int {
		L.Push(api)
		return 1
	}))
	L.SetField(fs, "consoleLog", L.NewFunction(func(L *lua.LState) int {
		logs = append(logs, L.CheckString(1)+": "+L.CheckString(2))
		return 0
	}))
	L.SetGlobal("freeswitch", fs)
	if err := L.DoString(string(script)); err != nil {
		t.Fatalf("step %s: %v", ev.Step, err)
	}
	return calls, logs
}

func script(t testing.TB, p Params, name string) []byte {
	t.Helper()
	files, err := Render(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if f.Name == "scripts/"+name {
			return f.Data
		}
	}
	t.Fatalf("no %s", name)
	return nil
}

// fakeFS is the part of FreeSWITCH the pack's scripts talk to: the APIs
// they execute — mod_hash's hash, mod_verto's verto_contact, mod_dptools'
// chat, mod_curl's curl, each answering as its source does — and
// mod_verto's logged-in sockets, which events change.
type fakeFS struct {
	t      testing.TB
	hash   map[string]string // mod_hash: "<realm>_<key>" → value
	live   map[string]string // logged-in sockets: address → uid (id@domain)
	chats  []string          // the chat API's arguments, in order
	noHash bool              // mod_hash not loaded
	// post does the curl API's POST (url, the data as sent) and returns
	// the answer's body; nil: over HTTP, as mod_curl does.
	post func(url, data string) string
}

func newFakeFS(t testing.TB) *fakeFS {
	return &fakeFS{t: t, hash: map[string]string{}, live: map[string]string{}}
}

func (f *fakeFS) execute(cmd, args string) string {
	switch cmd {
	case "hash":
		if f.noHash {
			return "-ERR hash Command not found!\n"
		}
		return f.hashAPI(args)
	case "verto_contact":
		return f.contact(args)
	case "chat":
		f.chats = append(f.chats, args)
		return "Sent"
	case "curl":
		return f.curl(args)
	}
	f.t.Fatalf("unexpected API %s %q", cmd, args)
	return ""
}

// hashAPI is mod_hash's hash API: [insert|delete|select]/<realm>/<key>[/<value>].
func (f *fakeFS) hashAPI(args string) string {
	argv := strings.SplitN(args, "/", 4)
	if len(argv) < 3 {
		return "-ERR Usage: hash [insert|delete|select]/<realm>/<key>/<val>\n"
	}
	key := argv[1] + "_" + argv[2]
	switch strings.ToLower(argv[0]) {
	case "insert":
		if len(argv) < 4 {
			return "-ERR Usage\n"
		}
		f.hash[key] = argv[3]
		return "+OK\n"
	case "delete":
		if _, ok := f.hash[key]; !ok {
			return "-ERR Not found\n"
		}
		delete(f.hash, key)
		return "+OK\n"
	case "select":
		return f.hash[key]
	}
	return "-ERR Usage\n"
}

// contact is mod_verto's verto_contact API: the dial strings of the
// user's logged-in sockets, or error/user_not_registered.
func (f *fakeFS) contact(uid string) string {
	var out []string
	for _, addr := range slices.Sorted(maps.Keys(f.live)) {
		if f.live[addr] == uid {
			out = append(out, "verto.rtc/u:"+addr)
		}
	}
	if len(out) == 0 {
		return "error/user_not_registered"
	}
	return strings.Join(out, ",")
}

// curl is mod_curl's curl API for what the pack uses: "URL [timeout N]
// post DATA", DATA URL-decoded once before it is sent (switch_url_decode),
// posted without credentials; the answer is the body.
func (f *fakeFS) curl(args string) string {
	argv := strings.Split(args, " ")
	u, data, post := argv[0], "", false
	for i := 1; i < len(argv); i++ {
		switch argv[i] {
		case "timeout", "connect-timeout":
			i++
			if i == len(argv) {
				f.t.Fatalf("curl %q: %s without seconds", args, argv[i-1])
			}
			if n, err := strconv.Atoi(argv[i]); err != nil || n <= 0 {
				f.t.Fatalf("curl %q: %s %q", args, argv[i-1], argv[i])
			}
		case "post":
			i++
			if i == len(argv) {
				f.t.Fatalf("curl %q: post without data", args)
			}
			data, post = urlDecode(argv[i]), true
		default:
			f.t.Fatalf("curl %q: unexpected argument %q", args, argv[i])
		}
	}
	if !post {
		f.t.Fatalf("curl %q: not a post", args)
	}
	if f.post != nil {
		return f.post(u, data)
	}
	return httpPost(f.t, u, data)
}

// httpPost posts data as mod_curl does and returns the answer's body.
func httpPost(t testing.TB, u, data string) string {
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("User-Agent", "freeswitch-curl/1.0")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return string(body)
}

// urlDecode is FreeSWITCH's switch_url_decode: %XX becomes its byte,
// everything else (a '+' too) stays.
func urlDecode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && len(s)-i > 2 {
			if v, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
				b.WriteByte(byte(v))
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// channelsHash is the mod_hash realm of the client → channel table.
const channelsHash = "channels_"

// pack runs the configuration pack's Lua hooks against a fakeFS and, for
// the curl API, a real /fsapi on a real store.
type hooks struct {
	t             testing.TB
	fs            *fakeFS
	relay, report []byte
	params        Params
}

// newPack serves /fsapi (the directory handlers on st) over HTTP and
// renders the scripts for it.
func newPack(t testing.TB, st *store.Store, edit ...func(*directory.Options)) *hooks {
	t.Helper()
	return newPackPassword(t, st, testParams.Password, edit...)
}

// newPackPassword is newPack with another /fsapi password.
func newPackPassword(t testing.TB, st *store.Store, password string, edit ...func(*directory.Options)) *hooks {
	t.Helper()
	reg := fsapi.NewRegistry(nil)
	opts := directory.Options{Store: st, Domain: fixtures.Domain}
	for _, e := range edit {
		e(&opts)
	}
	if err := directory.Register(reg, opts); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(fsapi.NewHandler(reg, fsapi.Options{
		User: fixtures.APIUser, Password: password, Hostname: fixtures.Hostname,
		Networks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
	}))
	t.Cleanup(srv.Close)
	p := testParams
	p.FSAPIURL = srv.URL + "/fsapi"
	p.Password = password
	return &hooks{t: t, fs: newFakeFS(t), relay: script(t, p, "relay.lua"), report: script(t, p, "report.lua"), params: p}
}

// fire delivers an event as FreeSWITCH does: mod_verto's own state first
// (a login marks its socket logged in; the disconnect event comes after
// the socket is gone), then the hook lua.conf names for it, then the
// MESSAGE events its chat calls fired, to relay.lua, which leaves them be.
// It returns the hook's API calls and log lines.
func (p *hooks) fire(ev fixtures.Event) (calls []call, logs []string) {
	p.t.Helper()
	h := ev.Headers
	addr := h["verto_client_address"]
	var hook []byte
	switch {
	case h["Event-Name"] == "MESSAGE":
		hook = p.relay
	case h["Event-Subclass"] == "verto::login":
		if h["verto_success"] == "1" {
			p.fs.live[addr] = h["verto_login"] + "@" + fixtures.Domain
		}
		hook = p.report
	case h["Event-Subclass"] == "verto::client_disconnect":
		delete(p.fs.live, addr)
		hook = p.report
	default:
		return nil, nil
	}
	before := len(p.fs.chats)
	calls, logs = runHook(p.t, hook, ev, p.fs.execute)
	for _, c := range p.fs.chats[before:] {
		parts := strings.SplitN(c, "|", 4)
		body := parts[3]
		out := fixtures.Event{Step: ev.Step + " (chat)", Body: &body, Headers: map[string]string{
			"Event-Name": "MESSAGE", "proto": "global", "dest_proto": "verto", "from": parts[1], "to": parts[2],
		}}
		if c, l := runHook(p.t, p.relay, out, p.fs.execute); len(c) != 0 || len(l) != 0 {
			p.t.Errorf("step %s: the chat API's own MESSAGE: calls %v, logs %q", ev.Step, c, l)
		}
	}
	return calls, logs
}

// wantHash checks that mod_hash holds exactly the channel of every client
// with a logged-in socket.
func (p *hooks) wantHash(step string, channelOf func(id string) string) {
	p.t.Helper()
	want := map[string]string{}
	for _, uid := range p.fs.live {
		id, _, _ := strings.Cut(uid, "@")
		want[channelsHash+id] = channelOf(id)
	}
	if !maps.Equal(p.fs.hash, want) {
		p.t.Errorf("step %s: mod_hash holds\n%v\nwant\n%v", step, p.fs.hash, want)
	}
}

func loginEvent(id, addr, success string) fixtures.Event {
	return fixtures.Event{Step: "login " + id[:8] + " " + addr, Headers: map[string]string{
		"Event-Name": "CUSTOM", "Event-Subclass": "verto::login", "FreeSWITCH-Hostname": fixtures.Hostname,
		"verto_profile_name": "channels", "verto_client_address": addr, "verto_login": id,
		"verto_sessid": "a0000000-0000-4000-8000-" + fmt.Sprintf("%012d", len(addr)), "verto_success": success,
	}}
}

func disconnectEvent(id, addr string) fixtures.Event {
	return fixtures.Event{Step: "disconnect " + id[:8] + " " + addr, Headers: map[string]string{
		"Event-Name": "CUSTOM", "Event-Subclass": "verto::client_disconnect", "FreeSWITCH-Hostname": fixtures.Hostname,
		"verto_profile_name": "channels", "verto_client_address": addr, "verto_login": id + "@" + fixtures.Domain,
	}}
}

func messageEvent(from, to, body string) fixtures.Event {
	return fixtures.Event{Step: "message " + from[:8] + " to " + to, Body: &body, Headers: map[string]string{
		"Event-Name": "MESSAGE", "proto": "verto", "dest_proto": "GLOBAL", "context": "public", "type": "text/plain",
		"from": from + "@" + fixtures.Domain, "from_user": from, "from_host": fixtures.Domain, "from_full": from, "to": to,
	}}
}

// seedRecorded puts the recorded channels and users into st.
func seedRecorded(t testing.TB, st *store.Store) {
	t.Helper()
	ctx := context.Background()
	for _, ch := range []string{fixtures.ChannelAB, fixtures.ChannelC} {
		if err := st.PutChannel(ctx, store.Channel{ID: ch, Topic: "recorded", Created: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	for _, u := range fixtures.Users() {
		if err := st.PutClient(ctx, store.Client{ID: u.ID, Password: u.Password, ChannelID: u.Channel}); err != nil {
			t.Fatal(err)
		}
	}
}

func recordedChannel(id string) string {
	for _, u := range fixtures.Users() {
		if u.ID == id {
			return u.Channel
		}
	}
	return ""
}

// step is what the pack did with one recorded event.
type step struct {
	ev    fixtures.Event
	calls []call
	logs  []string
	chats []string // the chat calls among calls
	hash  map[string]string
}

// replayRecording fires every recorded event at the pack, with /fsapi on
// st seeded with the recorded users in their channels; each, if not nil,
// sees every step as soon as it is done.
func replayRecording(t *testing.T, st *store.Store, each func(step)) (*hooks, []step) {
	t.Helper()
	seedRecorded(t, st)
	p := newPack(t, st)
	var out []step
	for _, ev := range fixtures.Events(t) {
		calls, logs := p.fire(ev)
		s := step{ev: ev, calls: calls, logs: logs, hash: maps.Clone(p.fs.hash)}
		for _, c := range calls {
			if c.cmd == "chat" {
				s.chats = append(s.chats, c.args)
			}
		}
		if each != nil {
			each(s)
		}
		out = append(out, s)
	}
	return p, out
}

// TestRelayRecordedEvents feeds every recorded event to the pack (the
// reports to a real /fsapi): exactly the MESSAGE events between clients of
// one channel give a chat call, each matching what FreeSWITCH's chat API
// then fired in the recording; A's message to an unknown client and C's
// to A, of another channel, are refused with a warning.
func TestRelayRecordedEvents(t *testing.T) {
	evs := fixtures.Events(t)
	const (
		a  = fixtures.UserA
		b  = fixtures.UserB
		at = "@" + fixtures.Domain
	)
	// The exact chat commands, in order, for the recorded scenario.
	want := []string{
		"verto|" + a + "|" + b + at + "|eyJ0eXBlIjoib2ZmZXIifQ==",
		"verto|" + a + "|" + b + at + "|eyJ0eXBlIjoiYWNjZXB0In0=",
		"verto|" + a + "|" + b + at + "|a|b\nc {\"d\":\"é\"} %20 +",
		"", // the large body: checked against the event below
		"verto|" + b + "|" + a + at + "|eyJ0eXBlIjoiY2xvc2UifQ==",
	}
	refused := map[string]string{
		"21 info msg to unknown client":             "to 00000000-0000-4000-8000-000000000000: not a logged-in client of the sender's channel",
		"25 C other channel logs in and messages A": "to " + a + ": not a logged-in client of the sender's channel",
	}
	for _, bk := range storetest.Stores(t) {
		t.Run(bk.Name, func(t *testing.T) {
			_, steps := replayRecording(t, bk.Store, nil)
			var got []string
			for i, s := range steps {
				ev := s.ev
				fromClient := ev.Headers["Event-Name"] == "MESSAGE" && ev.Headers["proto"] == "verto"
				if !fromClient {
					continue
				}
				if why, ok := refused[ev.Step]; ok {
					if len(s.chats) != 0 || len(s.logs) != 1 || !strings.Contains(s.logs[0], why) {
						t.Errorf("step %s: chats %q, logs %q; want refused: %s", ev.Step, s.chats, s.logs, why)
					}
					continue
				}
				if len(s.logs) > 0 {
					t.Errorf("step %s: logged %q", ev.Step, s.logs)
				}
				// Two look-ups in mod_hash, then the chat.
				if len(s.calls) != 3 || s.calls[0].cmd != "hash" || s.calls[1].cmd != "hash" || len(s.chats) != 1 {
					t.Fatalf("step %s: calls %v", ev.Step, s.calls)
				}
				got = append(got, s.chats[0])
				// What the chat API fired next in the recording: from, to, and the
				// body up to the first '|'.
				out := nextChatEvent(evs[i+1:])
				parts := strings.SplitN(s.chats[0], "|", 5)
				if out == nil || parts[1] != out.Headers["from"] || parts[2] != out.Headers["to"] || out.Body == nil || parts[3] != *out.Body {
					t.Errorf("step %s: chat %q does not give the recorded event %+v", ev.Step, s.chats[0], out)
				}
				if *ev.Body != strings.Join(parts[3:], "|") {
					t.Errorf("step %s: body changed", ev.Step)
				}
			}
			if len(got) != len(want) {
				t.Fatalf("%d chat calls, want %d: %q", len(got), len(want), got)
			}
			for i := range want {
				if want[i] != "" && got[i] != want[i] {
					t.Errorf("chat %d: got %q, want %q", i, got[i], want[i])
				}
			}
		})
	}
}

func nextChatEvent(evs []fixtures.Event) *fixtures.Event {
	for i := range evs {
		if evs[i].Headers["Event-Name"] == "MESSAGE" && evs[i].Headers["proto"] == "global" {
			return &evs[i]
		}
	}
	return nil
}

// TestReportRecordedEvents feeds every recorded event to the pack with the
// curl API done for real against /fsapi (the real endpoint, handlers and
// stores): the posts carry exactly the recorded report fields plus the
// secret (and, on disconnects, members=1, which the recorded hooks did not
// send), the endpoint takes them without basic credentials, the clients'
// connected times follow, mod_hash holds the channel of exactly the
// clients with a logged-in socket after every event, and the only leave
// notices are B's to A when B's last socket closes (step 31) and A's to B
// when A's does (step 33) — none for the punted or refused sockets of
// steps 29 and 30, nor for A's older socket in 33.
func TestReportRecordedEvents(t *testing.T) {
	recorded := recordedReports(t)
	for _, bk := range storetest.Stores(t) {
		t.Run(bk.Name, func(t *testing.T) {
			latest := map[string]string{} // client id: address of its latest login
			p, steps := replayRecording(t, bk.Store, func(s step) {
				if s.ev.Headers["Event-Name"] == "CUSTOM" {
					checkConnected(t, bk.Store, s.ev, latest)
				}
			})
			var forms []url.Values
			var leaves []string
			live := map[string]string{}
			for _, s := range steps {
				ev := s.ev
				sub := ev.Headers["Event-Subclass"]
				addr := ev.Headers["verto_client_address"]
				switch {
				case sub == "verto::login" && ev.Headers["verto_success"] == "1":
					live[addr] = ev.Headers["verto_login"]
				case sub == "verto::client_disconnect":
					delete(live, addr)
				}
				want := map[string]string{}
				for _, id := range live {
					if ch := recordedChannel(id); ch != "" {
						want[channelsHash+id] = ch
					}
				}
				if !maps.Equal(s.hash, want) {
					t.Errorf("step %s: mod_hash %v, want %v", ev.Step, s.hash, want)
				}
				if sub != "verto::login" && sub != "verto::client_disconnect" {
					continue
				}
				if len(s.calls) == 0 || s.calls[0].cmd != "curl" {
					t.Fatalf("step %s: calls %v", ev.Step, s.calls)
				}
				url0, data, ok := strings.Cut(s.calls[0].args, " post ")
				if url0 != p.params.FSAPIURL+" timeout 3" || !ok || strings.ContainsAny(data, " '\"\\") {
					t.Fatalf("step %s: curl %q", ev.Step, s.calls[0].args)
				}
				form, err := url.ParseQuery(urlDecode(data))
				if err != nil {
					t.Fatal(err)
				}
				if form.Get("secret") != testParams.Password {
					t.Errorf("step %s: secret %q", ev.Step, form.Get("secret"))
				}
				form.Del("secret")
				if (form.Get(directory.MembersField) == "1") != (sub == "verto::client_disconnect") {
					t.Errorf("step %s: members %q", ev.Step, form.Get(directory.MembersField))
				}
				form.Del(directory.MembersField)
				forms = append(forms, form)
				// Only the unknown client's login is refused; /fsapi
				// answers everything else with status ok.
				unknown := strings.HasPrefix(ev.Headers["verto_login"], "00000000") && ev.Headers["verto_success"] == "1"
				if (len(s.logs) > 0) != unknown {
					t.Errorf("step %s: logs %q", ev.Step, s.logs)
				}
				for _, c := range s.chats {
					leaves = append(leaves, ev.Step+": "+c)
				}
			}
			if len(forms) != len(recorded) {
				t.Fatalf("%d reports, recording has %d", len(forms), len(recorded))
			}
			for i := range forms {
				if forms[i].Encode() != recorded[i].Encode() {
					t.Errorf("report %d:\n got %s\nwant %s", i, forms[i].Encode(), recorded[i].Encode())
				}
			}
			const (
				a  = fixtures.UserA
				b  = fixtures.UserB
				at = "@" + fixtures.Domain
			)
			wantLeaves := []string{
				"31 B disconnects: " + leaveTo(b, a),
				"33 close all: " + leaveTo(a, b),
			}
			if !slices.Equal(leaves, wantLeaves) {
				t.Errorf("leave notices\n%q\nwant\n%q", leaves, wantLeaves)
			}
			if len(p.fs.hash) != 0 {
				t.Errorf("mod_hash after every socket closed: %v", p.fs.hash)
			}
		})
	}
}

// TestReportExactCommand pins the exact curl command for one login and one
// disconnect of the recording.
func TestReportExactCommand(t *testing.T) {
	report := script(t, testParams, "report.lua")
	var got []string
	for _, ev := range fixtures.Events(t) {
		if ev.Step != "06 login ok" && !(ev.Step == "29 second connection same user same sessid" && ev.Headers["Event-Subclass"] == "verto::client_disconnect") {
			continue
		}
		calls, _ := runHook(t, report, ev, func(cmd, _ string) string {
			if cmd == "verto_contact" {
				return "verto.rtc/u:a2000000-0000-4000-8000-0000000000a2"
			}
			return `<result status="ok"/>`
		})
		for _, c := range calls {
			got = append(got, c.cmd+" "+c.args)
		}
	}
	want := []string{
		"curl http://127.0.0.1:8080/fsapi timeout 3 post action=verto_client_login&login=3e1a6d2c-8f0b-4b6a-9c1d-2e3f4a5b6c7d&sessid=a0000000-0000-4000-8000-00000000000a&success=1&address=127.0.0.1%253A39360&hostname=vm&secret=fspass",
		"curl http://127.0.0.1:8080/fsapi timeout 3 post action=verto_client_disconnect&login=3e1a6d2c-8f0b-4b6a-9c1d-2e3f4a5b6c7d%2540channels.test&sessid=&success=&address=127.0.0.1%253A39360&hostname=vm&members=1&secret=fspass",
		"verto_contact 3e1a6d2c-8f0b-4b6a-9c1d-2e3f4a5b6c7d@channels.test",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestReportSkipsEventsWithoutLogin: a socket that never logged in (a port
// check, a failed handshake) fires verto::client_disconnect with an empty or
// no verto_login. The hook reports nothing for it, and logs nothing; the
// same event with its login is reported.
func TestReportSkipsEventsWithoutLogin(t *testing.T) {
	report := script(t, testParams, "report.lua")
	var disconnect fixtures.Event
	for _, ev := range fixtures.Events(t) {
		if ev.Headers["Event-Subclass"] == "verto::client_disconnect" {
			disconnect = ev
			break
		}
	}
	if disconnect.Headers == nil {
		t.Fatal("no verto::client_disconnect in the recording")
	}
	tests := []struct {
		name   string
		edit   func(h map[string]string)
		report bool
	}{
		{"recorded", func(map[string]string) {}, true},
		{"no login header", func(h map[string]string) { delete(h, "verto_login") }, false},
		{"empty login", func(h map[string]string) { h["verto_login"] = "" }, false},
		{"login event without login", func(h map[string]string) {
			h["Event-Subclass"], h["verto_success"] = "verto::login", "0"
			delete(h, "verto_login")
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := maps.Clone(disconnect.Headers)
			tt.edit(h)
			calls, logs := runHook(t, report, fixtures.Event{Headers: h, Step: tt.name}, func(cmd, _ string) string {
				if cmd == "verto_contact" {
					return "verto.rtc/u:a2000000-0000-4000-8000-0000000000a2"
				}
				return `<result status="ok"/>`
			})
			curls := 0
			for _, c := range calls {
				if c.cmd == "curl" {
					curls++
				}
			}
			if (curls == 1) != tt.report || curls > 1 {
				t.Errorf("calls %v, want a report: %v", calls, tt.report)
			}
			if len(logs) != 0 {
				t.Errorf("logged %q", logs)
			}
		})
	}
}

func checkConnected(t *testing.T, st *store.Store, ev fixtures.Event, latest map[string]string) {
	t.Helper()
	id, _, _ := strings.Cut(ev.Headers["verto_login"], "@")
	c, err := st.ClientByID(context.Background(), id)
	if err != nil {
		return // the unknown client
	}
	addr := ev.Headers["verto_client_address"]
	switch {
	case ev.Headers["Event-Subclass"] == "verto::login" && ev.Headers["verto_success"] == "1":
		latest[id] = addr
		if c.Connected.IsZero() {
			t.Errorf("step %s: %s not connected", ev.Step, id)
		}
	case ev.Headers["Event-Subclass"] == "verto::client_disconnect":
		// Only the close of the latest login's connection disconnects
		// (steps 29, 30 and the first of 33 close older ones).
		if want := addr == latest[id]; c.Connected.IsZero() != want {
			t.Errorf("step %s: %s connected %v after the close of %s (latest login %s)", ev.Step, id, !c.Connected.IsZero(), addr, latest[id])
		}
	}
}

// recordedReports returns the report forms of fixtures/xml-curl-requests.json
// (the stand-in's Lua hooks' posts), in order.
func recordedReports(t *testing.T) []url.Values {
	t.Helper()
	var out []url.Values
	for _, r := range fixtures.CurlRequests(t) {
		a := r.Form["action"]
		if a != fsapi.ActionClientLogin && a != fsapi.ActionClientDisconnect {
			continue
		}
		out = append(out, r.Values())
	}
	return out
}
