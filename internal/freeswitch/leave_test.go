package freeswitch

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"channels/internal/directory"
	"channels/internal/fixtures"
	"channels/internal/store"
	"channels/internal/store/storetest"
)

// TestLeaveNotice: report.lua's leave is the browsers' {"t":"unavailable"},
// base64 of its UTF-8 JSON like every body.
func TestLeaveNotice(t *testing.T) {
	got := luaGlobalAfter(t, script(t, testParams, "report.lua"), "unavailable")
	if want := base64.StdEncoding.EncodeToString([]byte(`{"t":"unavailable"}`)); got != want || got != leaveBody {
		t.Errorf("unavailable = %q, want %q", got, want)
	}
	raw, err := base64.StdEncoding.DecodeString(got)
	var m map[string]any
	if err != nil || json.Unmarshal(raw, &m) != nil || len(m) != 1 || m["t"] != "unavailable" {
		t.Errorf("%q decodes to %s (%v)", got, raw, err)
	}
}

// leaveTo is the chat call that tells member that leaver left.
func leaveTo(leaver, member string) string {
	return "verto|" + leaver + "|" + member + "@" + fixtures.Domain + "|" + leaveBody
}

// leaveBody is base64 of {"t":"unavailable"}; TestLeaveNotice checks that
// report.lua sends it.
const leaveBody = "eyJ0IjoidW5hdmFpbGFibGUifQ=="

// channelFixture is a store with two channels: x holds the clients in x,
// y those in y.
type channelFixture struct {
	st       *store.Store
	x, y     []string
	channels map[string]string // client id → channel id
}

func newChannelFixture(t testing.TB, st *store.Store, nx, ny int) *channelFixture {
	t.Helper()
	ctx := context.Background()
	f := &channelFixture{st: st, channels: map[string]string{}}
	for _, n := range []int{nx, ny} {
		ch, err := st.CreateChannel(ctx, "t", false, 0)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for range n {
			c, err := st.CreateClient(ctx, ch.ID)
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, c.ID)
			f.channels[c.ID] = ch.ID
		}
		if f.x == nil {
			f.x = ids
		} else {
			f.y = ids
		}
	}
	return f
}

func (f *channelFixture) channelOf(id string) string { return f.channels[id] }

// chatsOf returns the chat calls among calls, sorted.
func chatsOf(calls []call) []string {
	var out []string
	for _, c := range calls {
		if c.cmd == "chat" {
			out = append(out, c.args)
		}
	}
	slices.Sort(out)
	return out
}

// TestReportLeaves: when a member's last socket closes, report.lua sends
// the leave to exactly the connected members of its channel — not to
// itself, members who left, those who never came, nor other channels —
// and removes it from mod_hash; while it still has a socket logged in (a
// reload's new page, a second tab), nobody is told and mod_hash keeps it.
func TestReportLeaves(t *testing.T) {
	for _, bk := range storetest.Stores(t) {
		t.Run(bk.Name, func(t *testing.T) {
			// x: leaver L, members M1, M2 (connected), M3 (never came);
			// y: O (connected).
			setup := func(t *testing.T) (*hooks, *channelFixture, string) {
				f := newChannelFixture(t, bk.Store, 4, 1)
				p := newPack(t, bk.Store)
				for i, id := range []string{f.x[0], f.x[1], f.x[2], f.y[0]} {
					if _, logs := p.fire(loginEvent(id, fmt.Sprintf("127.0.0.1:%d", 1000+i), "1")); len(logs) != 0 {
						t.Fatalf("login: %q", logs)
					}
				}
				p.wantHash("logins", f.channelOf)
				return p, f, f.x[0]
			}
			fire := func(t *testing.T, p *hooks, ev fixtures.Event, want ...string) {
				t.Helper()
				calls, logs := p.fire(ev)
				slices.Sort(want)
				if got := chatsOf(calls); !slices.Equal(got, want) {
					t.Errorf("%s: chats\n%q\nwant\n%q", ev.Step, got, want)
				}
				if len(logs) != 0 {
					t.Errorf("%s: logs %q", ev.Step, logs)
				}
			}

			t.Run("last socket", func(t *testing.T) {
				p, f, l := setup(t)
				fire(t, p, disconnectEvent(l, "127.0.0.1:1000"), leaveTo(l, f.x[1]), leaveTo(l, f.x[2]))
				p.wantHash("after", f.channelOf)
			})
			t.Run("members who left are not told", func(t *testing.T) {
				p, f, l := setup(t)
				fire(t, p, disconnectEvent(f.x[2], "127.0.0.1:1002"), leaveTo(f.x[2], l), leaveTo(f.x[2], f.x[1]))
				fire(t, p, disconnectEvent(l, "127.0.0.1:1000"), leaveTo(l, f.x[1]))
				fire(t, p, disconnectEvent(f.x[1], "127.0.0.1:1001"))
				p.wantHash("after", f.channelOf)
			})
			t.Run("reload", func(t *testing.T) {
				// The new page logs in before the old socket's close.
				p, f, l := setup(t)
				fire(t, p, loginEvent(l, "127.0.0.1:2000", "1"))
				fire(t, p, disconnectEvent(l, "127.0.0.1:1000"))
				p.wantHash("old socket closed", f.channelOf)
				fire(t, p, disconnectEvent(l, "127.0.0.1:2000"), leaveTo(l, f.x[1]), leaveTo(l, f.x[2]))
				p.wantHash("new socket closed", f.channelOf)
			})
			t.Run("two tabs, the latest closes first", func(t *testing.T) {
				// Channels counts the client disconnected, but its older tab
				// is still logged in: nobody is told until that one closes.
				p, f, l := setup(t)
				fire(t, p, loginEvent(l, "127.0.0.1:2000", "1"))
				fire(t, p, disconnectEvent(l, "127.0.0.1:2000"))
				if c, _ := bk.Store.ClientByID(context.Background(), l); !c.Connected.IsZero() {
					t.Fatal("the store still counts the client connected: the case is not tested")
				}
				p.wantHash("latest closed", f.channelOf)
				fire(t, p, disconnectEvent(l, "127.0.0.1:1000"), leaveTo(l, f.x[1]), leaveTo(l, f.x[2]))
				p.wantHash("older closed", f.channelOf)
			})
			t.Run("failed and unknown logins", func(t *testing.T) {
				p, f, _ := setup(t)
				fire(t, p, loginEvent(f.x[3], "127.0.0.1:3000", "0"))
				if _, ok := p.fs.hash[channelsHash+f.x[3]]; ok {
					t.Error("a failed login is in mod_hash")
				}
				calls, logs := p.fire(loginEvent(clientD, "127.0.0.1:3001", "1"))
				if len(logs) != 1 || !strings.Contains(logs[0], "not taken") || len(calls) != 1 {
					t.Errorf("unknown client's login: calls %v, logs %q", calls, logs)
				}
				if _, ok := p.fs.hash[channelsHash+clientD]; ok {
					t.Error("an unknown client is in mod_hash")
				}
			})
			t.Run("Channels unreachable", func(t *testing.T) {
				// mod_curl answers nothing when the request fails: nobody
				// can be told, but mod_hash still forgets the client.
				p, f, l := setup(t)
				p.fs.post = func(string, string) string { return "" }
				calls, logs := p.fire(disconnectEvent(l, "127.0.0.1:1000"))
				if len(chatsOf(calls)) != 0 || len(logs) != 1 || !strings.Contains(logs[0], "not taken") {
					t.Errorf("calls %v, logs %q", calls, logs)
				}
				if _, ok := p.fs.hash[channelsHash+l]; ok {
					t.Error("mod_hash kept the client")
				}
				if c, _ := bk.Store.ClientByID(context.Background(), f.x[1]); c.Connected.IsZero() {
					t.Error("a member was disconnected")
				}
			})
		})
	}
}

// TestReportCacheAndLeavesRandom drives the pack through a random run of
// logins (on new sockets, some failed) and socket closes across two
// channels, against a model of mod_verto and of Channels' connected
// state: after every event mod_hash holds exactly the channel of each
// client with a socket logged in (so it is bounded by the logged-in
// clients), and every close sends the leave exactly when the client has
// no socket left and Channels cleared it, to exactly the channel's other
// connected clients. When every socket has closed, mod_hash is empty.
func TestReportCacheAndLeavesRandom(t *testing.T) {
	for _, bk := range storetest.Stores(t) {
		t.Run(bk.Name, func(t *testing.T) {
			f := newChannelFixture(t, bk.Store, 6, 3)
			p := newPack(t, bk.Store)
			clients := append(slices.Clone(f.x), f.y...)
			rnd := rand.New(rand.NewPCG(16, 1))
			// The model: logged-in sockets (address → client), and per
			// client the address of its latest login as Channels records
			// it ("" once cleared) and whether it counts as connected.
			live := map[string]string{}
			latest := map[string]string{}
			connected := map[string]bool{}
			port, leaves, peak := 4000, 0, 0
			for i := range 300 {
				var ev fixtures.Event
				var want []string
				switch r := rnd.IntN(100); {
				case r < 45 || len(live) == 0:
					id := clients[rnd.IntN(len(clients))]
					port++
					addr := "127.0.0.1:" + strconv.Itoa(port)
					live[addr], latest[id], connected[id] = id, addr, true
					ev = loginEvent(id, addr, "1")
				case r < 55:
					port++
					ev = loginEvent(clients[rnd.IntN(len(clients))], "127.0.0.1:"+strconv.Itoa(port), "0")
				default:
					addrs := slices.Sorted(func(yield func(string) bool) {
						for a := range live {
							if !yield(a) {
								return
							}
						}
					})
					addr := addrs[rnd.IntN(len(addrs))]
					id := live[addr]
					delete(live, addr)
					cleared := latest[id] == "" || latest[id] == addr
					if cleared {
						latest[id], connected[id] = "", false
					}
					if cleared && !slices.Contains(slices.Collect(mapValues(live)), id) {
						for _, m := range clients {
							if m != id && connected[m] && f.channelOf(m) == f.channelOf(id) {
								want = append(want, leaveTo(id, m))
							}
						}
					}
					ev = disconnectEvent(id, addr)
				}
				ev.Step = fmt.Sprintf("%d %s", i, ev.Step)
				calls, logs := p.fire(ev)
				if len(logs) != 0 {
					t.Fatalf("step %s: logs %q", ev.Step, logs)
				}
				slices.Sort(want)
				if got := chatsOf(calls); !slices.Equal(got, want) {
					t.Fatalf("step %s: chats\n%q\nwant\n%q", ev.Step, got, want)
				}
				leaves += len(want)
				p.wantHash(ev.Step, f.channelOf)
				peak = max(peak, len(p.fs.hash))
				if len(p.fs.hash) > len(clients) {
					t.Fatalf("step %s: %d entries for %d clients", ev.Step, len(p.fs.hash), len(clients))
				}
			}
			for addr, id := range live {
				p.fire(disconnectEvent(id, addr))
			}
			if len(p.fs.hash) != 0 {
				t.Errorf("mod_hash after every socket closed: %v", p.fs.hash)
			}
			if leaves == 0 || peak < 3 {
				t.Errorf("a weak run: %d leaves, at most %d clients in mod_hash", leaves, peak)
			}
		})
	}
}

func mapValues[K comparable, V any](m map[K]V) func(func(V) bool) {
	return func(yield func(V) bool) {
		for _, v := range m {
			if !yield(v) {
				return
			}
		}
	}
}

// TestLeaveAnswerBounded: in a channel of more connected members than
// directory.DefaultMaxLeaveMembers, the disconnect answer names that many
// (the most recently connected), fits the pack's mod_curl max-bytes, and
// report.lua tells each of them once.
func TestLeaveAnswerBounded(t *testing.T) {
	const members = directory.DefaultMaxLeaveMembers + 1
	bk := storetest.SQLite(t)
	ctx := context.Background()
	ch, err := bk.Store.CreateChannel(ctx, "big", true, 0)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(-time.Hour)
	var ids []string
	for i := range members {
		c := store.Client{ID: fmt.Sprintf("00000000-0000-4000-8000-%012d", i+1), Password: "pw", ChannelID: ch.ID, Connected: at.Add(time.Duration(i) * time.Millisecond)}
		if err := bk.Store.PutClient(ctx, c); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, c.ID)
	}
	leaver, err := bk.Store.CreateClient(ctx, ch.ID)
	if err != nil {
		t.Fatal(err)
	}
	p := newPack(t, bk.Store)
	p.fire(loginEvent(leaver.ID, "127.0.0.1:1000", "1"))
	var answer string
	p.fs.post = func(u, data string) string {
		answer = httpPost(t, u, data)
		return answer
	}
	// The hook alone: the thousand MESSAGE events its chat calls fire are
	// fire's to check elsewhere.
	delete(p.fs.live, "127.0.0.1:1000")
	calls, logs := runHook(t, p.report, disconnectEvent(leaver.ID, "127.0.0.1:1000"), p.fs.execute)
	if len(logs) != 0 {
		t.Fatalf("logs %q", logs)
	}
	maxBytes := 0
	_, docs := written(t, testParams)
	docs["autoload_configs/curl.conf.xml"].walk(func(e element) {
		if e.attr("name") == "max-bytes" {
			maxBytes, _ = strconv.Atoi(e.attr("value"))
		}
	})
	if len(answer) > maxBytes || !strings.Contains(answer, ` truncated="true"`) {
		t.Errorf("answer of %d bytes (max-bytes %d), truncated: %v", len(answer), maxBytes, strings.Contains(answer, "truncated"))
	}
	var want []string
	for _, id := range ids[1:] { // the first connected is the one left out
		want = append(want, leaveTo(leaver.ID, id))
	}
	slices.Sort(want)
	if got := chatsOf(calls); !slices.Equal(got, want) {
		t.Errorf("%d chats, want %d", len(got), len(want))
	}
	t.Logf("largest answer: %d bytes for %d members; max-bytes %d", len(answer), len(want), maxBytes)
}

// TestReportSecretSurvivesCurl: mod_curl's curl API URL-decodes the post
// data before sending it, so report.lua encodes twice; a password with
// the characters URL encoding is about (as base64 ones, "+" and "/", and
// "&", "=", "%", a space) still proves the report.
func TestReportSecretSurvivesCurl(t *testing.T) {
	bk := storetest.SQLite(t)
	f := newChannelFixture(t, bk.Store, 1, 0)
	p := newPackPassword(t, bk.Store, "a+b/c=d&e%41 f%zz\u00e9")
	if got := luaGlobalAfter(t, p.report, "secret"); got != p.params.Password {
		t.Fatalf("secret %q", got)
	}
	calls, logs := p.fire(loginEvent(f.x[0], "127.0.0.1:1000", "1"))
	if len(logs) != 0 || len(calls) != 2 {
		t.Fatalf("calls %v, logs %q", calls, logs)
	}
	if c, err := bk.Store.ClientByID(context.Background(), f.x[0]); err != nil || c.Connected.IsZero() {
		t.Errorf("not connected: %+v %v", c, err)
	}
	p.wantHash("login", f.channelOf)
}
