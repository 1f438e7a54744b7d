package freeswitch

import (
	"context"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"

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
// and the freeswitch table (API():execute, consoleLog). execute answers
// with reply.
func runHook(t *testing.T, script []byte, ev fixtures.Event, reply func(cmd, args string) string) (calls []call, logs []string) {
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

func script(t *testing.T, p Params, name string) []byte {
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

// TestRelayRecordedEvents feeds every recorded event to relay.lua: exactly
// the MESSAGE events from Verto clients give a chat call, and each call
// matches what FreeSWITCH's chat API then fired in the recording.
func TestRelayRecordedEvents(t *testing.T) {
	relay := script(t, testParams, "relay.lua")
	evs := fixtures.Events(t)
	const (
		a  = fixtures.UserA
		b  = fixtures.UserB
		c  = fixtures.UserC
		at = "@" + fixtures.Domain
	)
	// The exact chat commands, in order, for the recorded scenario.
	want := []string{
		"verto|" + a + "|" + b + at + "|eyJ0eXBlIjoib2ZmZXIifQ==",
		"verto|" + a + "|" + b + at + "|eyJ0eXBlIjoiYWNjZXB0In0=",
		"verto|" + a + "|00000000-0000-4000-8000-000000000000" + at + "|eA==",
		"verto|" + a + "|" + b + at + "|a|b\nc {\"d\":\"é\"} %20 +",
		"", // the large body: checked against the event below
		"verto|" + c + "|" + a + at + "|eyJ0eXBlIjoib2ZmZXIifQ==",
		"verto|" + b + "|" + a + at + "|eyJ0eXBlIjoiY2xvc2UifQ==",
	}
	var got []string
	for i, ev := range evs {
		calls, logs := runHook(t, relay, ev, func(string, string) string { return "Sent" })
		if len(logs) > 0 {
			t.Errorf("step %s: logged %q", ev.Step, logs)
		}
		fromClient := ev.Headers["Event-Name"] == "MESSAGE" && ev.Headers["proto"] == "verto"
		if !fromClient {
			if len(calls) != 0 {
				t.Errorf("step %s: %s event relayed: %v", ev.Step, ev.Headers["Event-Name"], calls)
			}
			continue
		}
		if len(calls) != 1 || calls[0].cmd != "chat" {
			t.Fatalf("step %s: calls %v", ev.Step, calls)
		}
		got = append(got, calls[0].args)
		// What the chat API fired next in the recording: from, to, and the
		// body up to the first '|'.
		out := nextChatEvent(evs[i+1:])
		parts := strings.SplitN(calls[0].args, "|", 5)
		if out == nil || parts[1] != out.Headers["from"] || parts[2] != out.Headers["to"] || out.Body == nil || parts[3] != *out.Body {
			t.Errorf("step %s: chat %q does not give the recorded event %+v", ev.Step, calls[0].args, out)
		}
		if *ev.Body != strings.Join(parts[3:], "|") {
			t.Errorf("step %s: body changed", ev.Step)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%d chat calls, want %d", len(got), len(want))
	}
	for i := range want {
		if want[i] != "" && got[i] != want[i] {
			t.Errorf("chat %d: got %q, want %q", i, got[i], want[i])
		}
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

func TestRelayRefuses(t *testing.T) {
	relay := script(t, testParams, "relay.lua")
	body := "eA=="
	base := map[string]string{"Event-Name": "MESSAGE", "proto": "verto", "dest_proto": "GLOBAL",
		"from_user": fixtures.UserA, "to": fixtures.UserB}
	tests := []struct {
		name string
		edit func(h map[string]string)
		body *string
		log  bool
	}{
		{"other domain", func(h map[string]string) { h["to"] += "@evil.test" }, &body, true},
		{"empty user before domain", func(h map[string]string) { h["to"] = "@" + fixtures.Domain }, &body, true},
		{"no to", func(h map[string]string) { delete(h, "to") }, &body, true},
		{"no from_user", func(h map[string]string) { delete(h, "from_user") }, &body, true},
		{"no body", func(map[string]string) {}, nil, true},
		{"pipe in to", func(h map[string]string) { h["to"] = "a|b" }, &body, true},
		{"chat's own event", func(h map[string]string) { h["proto"], h["dest_proto"] = "global", "verto" }, &body, false},
		{"SIP message", func(h map[string]string) { h["proto"] = "sip" }, &body, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := map[string]string{}
			for k, v := range base {
				h[k] = v
			}
			tt.edit(h)
			calls, logs := runHook(t, relay, fixtures.Event{Headers: h, Body: tt.body, Step: tt.name}, func(string, string) string { return "" })
			if len(calls) != 0 {
				t.Errorf("relayed: %v", calls)
			}
			if (len(logs) > 0) != tt.log {
				t.Errorf("logs %q, want a log line: %v", logs, tt.log)
			}
		})
	}
}

// TestReportRecordedEvents feeds every recorded event to report.lua with
// the curl API done for real against /fsapi (the real endpoint, handlers
// and stores): the posts carry exactly the recorded report fields plus the
// secret, the endpoint takes them without basic credentials, and the
// clients' connected times follow.
func TestReportRecordedEvents(t *testing.T) {
	evs := fixtures.Events(t)
	recorded := recordedReports(t)
	for _, bk := range storetest.Stores(t) {
		t.Run(bk.Name, func(t *testing.T) {
			ctx := context.Background()
			ch, err := bk.Store.CreateChannel(ctx, "t", false, 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, u := range fixtures.Users() {
				if err := bk.Store.PutClient(ctx, store.Client{ID: u.ID, Password: "pw", ChannelID: ch.ID}); err != nil {
					t.Fatal(err)
				}
			}
			reg := fsapi.NewRegistry(nil)
			if err := directory.Register(reg, directory.Options{Store: bk.Store, Domain: fixtures.Domain}); err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(fsapi.NewHandler(reg, fsapi.Options{
				User: fixtures.APIUser, Password: testParams.Password, Hostname: fixtures.Hostname,
				Networks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
			}))
			defer srv.Close()
			p := testParams
			p.FSAPIURL = srv.URL + "/fsapi"
			report := script(t, p, "report.lua")

			var forms []url.Values
			latest := map[string]string{} // client id: address of its latest login
			for _, ev := range evs {
				calls, logs := runHook(t, report, ev, func(cmd, args string) string {
					return curlAPI(t, cmd, args)
				})
				sub := ev.Headers["Event-Subclass"]
				if sub != "verto::login" && sub != "verto::client_disconnect" {
					if len(calls) != 0 {
						t.Errorf("step %s: %s reported", ev.Step, sub)
					}
					continue
				}
				if len(calls) != 1 || calls[0].cmd != "curl" {
					t.Fatalf("step %s: calls %v", ev.Step, calls)
				}
				url0, data, ok := strings.Cut(calls[0].args, " post ")
				if url0 != p.FSAPIURL || !ok || strings.ContainsAny(data, " '\"\\") {
					t.Fatalf("step %s: curl %q", ev.Step, calls[0].args)
				}
				form, err := url.ParseQuery(data)
				if err != nil {
					t.Fatal(err)
				}
				if form.Get("secret") != testParams.Password {
					t.Errorf("step %s: secret %q", ev.Step, form.Get("secret"))
				}
				form.Del("secret")
				forms = append(forms, form)
				// Only the unknown client's login is refused; /fsapi
				// answers everything else with status ok.
				unknown := strings.HasPrefix(ev.Headers["verto_login"], "00000000") && ev.Headers["verto_success"] == "1"
				if (len(logs) > 0) != unknown {
					t.Errorf("step %s: logs %q", ev.Step, logs)
				}
				checkConnected(t, bk.Store, ev, latest)
			}
			if len(forms) != len(recorded) {
				t.Fatalf("%d reports, recording has %d", len(forms), len(recorded))
			}
			for i := range forms {
				if forms[i].Encode() != recorded[i].Encode() {
					t.Errorf("report %d:\n got %s\nwant %s", i, forms[i].Encode(), recorded[i].Encode())
				}
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
		calls, _ := runHook(t, report, ev, func(string, string) string { return `<result status="ok"/>` })
		for _, c := range calls {
			got = append(got, c.cmd+" "+c.args)
		}
	}
	want := []string{
		"curl http://127.0.0.1:8080/fsapi post action=verto_client_login&login=3e1a6d2c-8f0b-4b6a-9c1d-2e3f4a5b6c7d&sessid=a0000000-0000-4000-8000-00000000000a&success=1&address=127.0.0.1%3A39360&hostname=vm&secret=fspass",
		"curl http://127.0.0.1:8080/fsapi post action=verto_client_disconnect&login=3e1a6d2c-8f0b-4b6a-9c1d-2e3f4a5b6c7d%40channels.test&sessid=&success=&address=127.0.0.1%3A39360&hostname=vm&secret=fspass",
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
			calls, logs := runHook(t, report, fixtures.Event{Headers: h, Step: tt.name}, func(string, string) string {
				return `<result status="ok"/>`
			})
			if (len(calls) == 1) != tt.report || len(calls) > 1 {
				t.Errorf("calls %v, want a report: %v", calls, tt.report)
			}
			if len(logs) != 0 {
				t.Errorf("logged %q", logs)
			}
		})
	}
}

// curlAPI does what mod_curl's curl API does with "URL post DATA": an
// URL-encoded POST without credentials; it returns the body.
func curlAPI(t *testing.T, cmd, args string) string {
	t.Helper()
	argv := strings.Split(args, " ")
	if cmd != "curl" || len(argv) != 3 || argv[1] != "post" {
		t.Fatalf("curl %q", args)
	}
	req, err := http.NewRequest(http.MethodPost, argv[0], strings.NewReader(argv[2]))
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
	if res.StatusCode != http.StatusOK {
		t.Fatalf("curl: status %d: %s", res.StatusCode, body)
	}
	return string(body)
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
