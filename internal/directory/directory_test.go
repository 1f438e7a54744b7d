package directory

import (
	"bytes"
	"context"
	"encoding/xml"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"channels/internal/fixtures"
	"channels/internal/fsapi"
	"channels/internal/store"
	"channels/internal/store/storetest"
)

// entry is a directory answer as FreeSWITCH reads it.
type entry struct {
	Domain   string
	ID       string
	Params   map[string]string
	NotFound bool
}

func parse(t *testing.T, doc []byte) entry {
	t.Helper()
	var d struct {
		Section struct {
			Name   string `xml:"name,attr"`
			Domain struct {
				Name string `xml:"name,attr"`
				User struct {
					ID     string `xml:"id,attr"`
					Params []struct {
						Name  string `xml:"name,attr"`
						Value string `xml:"value,attr"`
					} `xml:"params>param"`
				} `xml:"user"`
			} `xml:"domain"`
			Result struct {
				Status string `xml:"status,attr"`
			} `xml:"result"`
		} `xml:"section"`
	}
	if err := xml.Unmarshal(doc, &d); err != nil {
		t.Fatalf("%v: %s", err, doc)
	}
	if d.Section.Name == "result" {
		if d.Section.Result.Status == "not found" {
			return entry{NotFound: true}
		}
		return entry{Params: map[string]string{"status": d.Section.Result.Status}}
	}
	e := entry{Domain: d.Section.Domain.Name, ID: d.Section.Domain.User.ID, Params: map[string]string{}}
	for _, p := range d.Section.Domain.User.Params {
		e.Params[p.Name] = p.Value
	}
	return e
}

func lookup(user string) url.Values {
	return url.Values{
		"section": {"directory"}, "tag_name": {"domain"}, "key_name": {"name"}, "key_value": {fixtures.Domain},
		"action": {"jsonrpc-authenticate"}, "user": {user}, "domain": {fixtures.Domain}, "hostname": {fixtures.Hostname},
	}
}

type fixture struct {
	st   *store.Store
	reg  *fsapi.Registry
	logs *bytes.Buffer
	ch   store.Channel
	c    []store.Client // clients of ch
	now  time.Time
}

func newFixture(t testing.TB, st *store.Store, maxClients, clients int, edit ...func(*Options)) *fixture {
	t.Helper()
	ctx := context.Background()
	f := &fixture{st: st, logs: &bytes.Buffer{}, now: time.Date(2026, 11, 24, 18, 0, 0, 0, time.UTC)}
	var err error
	if f.ch, err = st.CreateChannel(ctx, "t", true, 0); err != nil {
		t.Fatal(err)
	}
	for range clients {
		c, err := st.CreateClient(ctx, f.ch.ID)
		if err != nil {
			t.Fatal(err)
		}
		f.c = append(f.c, c)
	}
	f.reg = fsapi.NewRegistry(slog.New(slog.NewTextHandler(f.logs, nil)))
	opts := Options{
		Store: st, Domain: fixtures.Domain, MaxClientsPerChannel: maxClients,
		Logger: slog.New(slog.NewTextHandler(f.logs, nil)),
		Now:    func() time.Time { return f.now },
	}
	for _, e := range edit {
		e(&opts)
	}
	err = Register(f.reg, opts)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) respond(form url.Values) []byte {
	return f.reg.Respond(context.Background(), form)
}

func TestLogin(t *testing.T) {
	for _, b := range storetest.Stores(t) {
		t.Run(b.Name, func(t *testing.T) {
			f := newFixture(t, b.Store, 0, 2)
			other := f.c[1]
			tests := []struct {
				name string
				form url.Values
				want *store.Client // nil: not found
			}{
				{"known client", lookup(f.c[0].ID), &f.c[0]},
				{"another client", lookup(other.ID), &other},
				{"unknown client", lookup("00000000-0000-4000-8000-000000000000"), nil},
				{"empty user", lookup(""), nil},
				{"upper-case id", lookup(strings.ToUpper(f.c[0].ID)), nil},
				{"id with domain", lookup(f.c[0].ID + "@" + fixtures.Domain), nil},
				{"injection", lookup("' OR '1'='1"), nil},
				{"too long", lookup(f.c[0].ID + "0"), nil},
				{"hostile", lookup(`"/><user id="x`), nil},
				{"other domain", func() url.Values { v := lookup(f.c[0].ID); v.Set("domain", "evil.test"); return v }(), nil},
				{"not a jsonrpc lookup", func() url.Values { v := lookup(f.c[0].ID); v.Set("action", "sip_auth"); return v }(), nil},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					e := parse(t, f.respond(tt.form))
					if tt.want == nil {
						if !e.NotFound {
							t.Fatalf("got %+v, want not found", e)
						}
						return
					}
					want := map[string]string{
						"password":                       tt.want.Password,
						"jsonrpc-allowed-methods":        AllowedMethods,
						"jsonrpc-allowed-event-channels": f.ch.ID,
					}
					if e.Domain != fixtures.Domain || e.ID != tt.want.ID || len(e.Params) != len(want) {
						t.Fatalf("got %+v", e)
					}
					for k, v := range want {
						if e.Params[k] != v {
							t.Errorf("%s = %q, want %q", k, e.Params[k], v)
						}
					}
				})
			}
		})
	}
}

// TestLoginHostilePassword stores values no real client has and checks
// they come out escaped and intact.
func TestLoginHostilePassword(t *testing.T) {
	for _, b := range storetest.Stores(t) {
		t.Run(b.Name, func(t *testing.T) {
			f := newFixture(t, b.Store, 0, 0)
			for i, pw := range []string{`"/><param name="x" value="`, "&amp;<!-- ]]>", "tab\tnl\n", "ctl\x01\x1f", "日本'\""} {
				id := []string{
					"10000000-0000-4000-8000-000000000000", "20000000-0000-4000-8000-000000000000",
					"30000000-0000-4000-8000-000000000000", "40000000-0000-4000-8000-000000000000",
					"50000000-0000-4000-8000-000000000000",
				}[i]
				if err := b.Store.PutClient(context.Background(), store.Client{ID: id, Password: pw, ChannelID: f.ch.ID}); err != nil {
					t.Fatal(err)
				}
				e := parse(t, f.respond(lookup(id)))
				want := strings.NewReplacer("\x01", "\uFFFD", "\x1f", "\uFFFD").Replace(pw)
				if e.Params["password"] != want || len(e.Params) != 3 {
					t.Errorf("password %q came back as %+v", pw, e)
				}
			}
		})
	}
}

func TestChannelLimit(t *testing.T) {
	for _, b := range storetest.Stores(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			tests := []struct {
				name      string
				max       int
				connected int  // clients of the channel connected beforehand
				self      bool // the logging-in client is one of them
				found     bool
			}{
				{"off", 0, 3, false, true},
				{"below", 3, 2, false, true},
				{"at the limit", 3, 3, false, false},
				{"at the limit but already connected", 3, 3, true, true},
				{"limit one, empty", 1, 0, false, true},
				{"limit one, taken", 1, 1, false, false},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					f := newFixture(t, b.Store, tt.max, 4)
					me := f.c[3]
					connect := f.c[:tt.connected]
					if tt.self {
						connect = append(f.c[:tt.connected-1:tt.connected-1], me)
					}
					for _, c := range connect {
						if err := b.Store.SetClientConnected(ctx, c.ID, f.now); err != nil {
							t.Fatal(err)
						}
					}
					e := parse(t, f.respond(lookup(me.ID)))
					if e.NotFound == tt.found {
						t.Fatalf("found %v, want %v", !e.NotFound, tt.found)
					}
					if !tt.found && !strings.Contains(f.logs.String(), "channel full") {
						t.Errorf("no log line: %s", f.logs)
					}
				})
			}
		})
	}
}

func report(action, login, success string) url.Values {
	return url.Values{
		"action": {action}, "login": {login}, "sessid": {"a0000000-0000-4000-8000-00000000000a"},
		"success": {success}, "address": {"127.0.0.1:39360"}, "hostname": {fixtures.Hostname},
	}
}

func TestReports(t *testing.T) {
	for _, b := range storetest.Stores(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			unknown := "00000000-0000-4000-8000-000000000000"
			tests := []struct {
				name      string
				before    bool // the client is connected beforehand
				form      func(id string) url.Values
				connected bool
				ok        bool   // answer ok (else not found)
				log       string // a log line to expect
			}{
				{"login", false, func(id string) url.Values { return report(fsapi.ActionClientLogin, id, "1") }, true, true, ""},
				{"login with domain", false, func(id string) url.Values { return report(fsapi.ActionClientLogin, id+"@"+fixtures.Domain, "1") }, true, true, ""},
				{"login with other domain", false, func(id string) url.Values { return report(fsapi.ActionClientLogin, id+"@evil.test", "1") }, false, false, "malformed"},
				{"failed login", false, func(id string) url.Values { return report(fsapi.ActionClientLogin, id, "0") }, false, true, ""},
				{"failed login keeps connection", true, func(id string) url.Values { return report(fsapi.ActionClientLogin, id, "0") }, true, true, ""},
				{"login of unknown client", false, func(string) url.Values { return report(fsapi.ActionClientLogin, unknown, "1") }, false, false, "unknown client"},
				{"login of malformed id", false, func(string) url.Values { return report(fsapi.ActionClientLogin, "x'; DROP TABLE clients", "1") }, false, false, "malformed"},
				{"disconnect", true, func(id string) url.Values { return report(fsapi.ActionClientDisconnect, id+"@"+fixtures.Domain, "") }, false, true, ""},
				{"disconnect bare id", true, func(id string) url.Values { return report(fsapi.ActionClientDisconnect, id, "") }, false, true, ""},
				{"disconnect when not connected", false, func(id string) url.Values { return report(fsapi.ActionClientDisconnect, id+"@"+fixtures.Domain, "") }, false, true, ""},
				{"disconnect of unknown client", true, func(string) url.Values { return report(fsapi.ActionClientDisconnect, unknown+"@"+fixtures.Domain, "") }, true, false, "unknown client"},
				{"disconnect of empty login", true, func(string) url.Values { return report(fsapi.ActionClientDisconnect, "", "") }, true, false, "malformed"},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					f := newFixture(t, b.Store, 0, 1)
					id := f.c[0].ID
					if tt.before {
						if err := b.Store.SetClientConnected(ctx, id, f.now.Add(-time.Hour)); err != nil {
							t.Fatal(err)
						}
					}
					e := parse(t, f.respond(tt.form(id)))
					if tt.ok != (e.Params["status"] == "ok") || tt.ok == e.NotFound {
						t.Fatalf("answer %+v, want ok=%v", e, tt.ok)
					}
					c, err := b.Store.ClientByID(ctx, id)
					if err != nil {
						t.Fatal(err)
					}
					if c.Connected.IsZero() == tt.connected {
						t.Errorf("connected %v, want %v", c.Connected, tt.connected)
					}
					if tt.connected && !tt.before && !c.Connected.Equal(f.now) {
						t.Errorf("connected at %v, want %v", c.Connected, f.now)
					}
					if tt.log != "" && !strings.Contains(f.logs.String(), tt.log) {
						t.Errorf("log lacks %q: %s", tt.log, f.logs)
					}
					if strings.Contains(f.logs.String(), "level=ERROR") {
						t.Errorf("logged an error: %s", f.logs)
					}
				})
			}
		})
	}
}

func TestRegisterValidates(t *testing.T) {
	reg := fsapi.NewRegistry(nil)
	if err := Register(reg, Options{Domain: fixtures.Domain}); err == nil {
		t.Error("no store accepted")
	}
	if err := Register(reg, Options{Store: &store.Store{}}); err == nil {
		t.Error("no domain accepted")
	}
}

// TestCache: a client's password and channel are served from memory for
// CacheTTL after a lookup — even when the store has lost the client, which
// shows the cache answered — and never when the cache is off or a channel
// limit is set.
func TestCache(t *testing.T) {
	for _, b := range storetest.Stores(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			tests := []struct {
				name     string
				max      int
				ttl      time.Duration
				advance  time.Duration
				stillHit bool
			}{
				{"within TTL", 0, 0, DefaultCacheTTL - time.Second, true},
				{"TTL over", 0, 0, DefaultCacheTTL, false},
				{"custom TTL", 0, time.Hour, 59 * time.Minute, true},
				{"cache off", 0, -1, 0, false},
				{"limit set: no cache", 5, 0, 0, false},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					f := newFixture(t, b.Store, tt.max, 1, func(o *Options) { o.CacheTTL = tt.ttl })
					c := f.c[0]
					if e := parse(t, f.respond(lookup(c.ID))); e.NotFound || e.Params["password"] != c.Password {
						t.Fatalf("first lookup: %+v", e)
					}
					// The sweeper deletes the client (it never logged in);
					// its channel stays.
					if n, err := b.Store.DeleteUnusedClients(ctx, store.SweepRules{Now: time.Now().Add(time.Hour), NeverLoggedIn: time.Nanosecond}); err != nil || n != 1 {
						t.Fatalf("delete the client: %d, %v", n, err)
					}
					f.now = f.now.Add(tt.advance)
					e := parse(t, f.respond(lookup(c.ID)))
					if e.NotFound == tt.stillHit {
						t.Fatalf("found %v, want %v", !e.NotFound, tt.stillHit)
					}
					if tt.stillHit && (e.Params["password"] != c.Password || e.Params["jsonrpc-allowed-event-channels"] != f.ch.ID) {
						t.Errorf("cached answer %+v", e)
					}
				})
			}
		})
	}
}

func TestCacheBounded(t *testing.T) {
	now := time.Unix(0, 0)
	c := newCache(2, time.Minute, func() time.Time { return now })
	for _, id := range []string{"a", "b", "c", "d"} {
		c.put(store.Client{ID: id, Password: "p" + id, ChannelID: "ch"}, nil)
		if len(c.entries) > 2 {
			t.Fatalf("%d entries", len(c.entries))
		}
	}
	got, ok := c.get("d")
	if !ok || got.Password != "pd" || got.ChannelID != "ch" || got.ID != "d" {
		t.Errorf("get d: %+v %v", got, ok)
	}
	var nilCache *cache
	nilCache.put(store.Client{ID: "x"}, nil)
	if _, ok := nilCache.get("x"); ok {
		t.Error("nil cache has entries")
	}
}

// TestConnections: a disconnect report clears the connected time only when
// it is about the connection of the client's latest login, so the close of
// a punted tab, or a report that arrives after the next login's, leaves a
// live client connected.
func TestConnections(t *testing.T) {
	type step struct {
		action    string // fsapi.ActionClientLogin or fsapi.ActionClientDisconnect
		addr      string
		connected bool // after the step
	}
	login := func(addr string) step { return step{fsapi.ActionClientLogin, addr, true} }
	disc := func(addr string, connected bool) step { return step{fsapi.ActionClientDisconnect, addr, connected} }
	const a, b = "127.0.0.1:40001", "127.0.0.1:40002"
	tests := []struct {
		name  string
		steps []step
	}{
		{"older connection closes first", []step{login(a), login(b), disc(a, true), disc(b, false)}},
		{"punted tab's report after the new login's", []step{login(a), login(b), disc(a, true)}},
		{"one connection", []step{login(a), disc(a, false)}},
		{"same address again", []step{login(a), disc(a, false), login(a), disc(a, false)}},
		{"disconnect without address clears", []step{login(a), login(b), disc("", false)}},
		{"login without address, any disconnect clears", []step{login(""), disc(a, false)}},
		{"stale disconnect when not connected", []step{login(a), disc(a, false), disc(b, false)}},
		{"relogin on the first address", []step{login(a), login(b), login(a), disc(b, true), disc(a, false)}},
	}
	for _, bk := range storetest.Stores(t) {
		t.Run(bk.Name, func(t *testing.T) {
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					f := newFixture(t, bk.Store, 0, 1)
					id := f.c[0].ID
					for i, s := range tt.steps {
						form := report(s.action, id+"@"+fixtures.Domain, "1")
						form.Set("address", s.addr)
						if e := parse(t, f.respond(form)); e.Params["status"] != "ok" {
							t.Fatalf("step %d: answer %+v", i, e)
						}
						c, err := bk.Store.ClientByID(context.Background(), id)
						if err != nil {
							t.Fatal(err)
						}
						if !c.Connected.IsZero() != s.connected {
							t.Fatalf("step %d (%s %q): connected %v, want %v", i, s.action, s.addr, !c.Connected.IsZero(), s.connected)
						}
					}
				})
			}
		})
	}
}

// TestChannelLimitRace: simultaneous directory logins of different clients
// into a limited channel, none of whose login reports has arrived yet, let
// in exactly the limit. Reading the connected count alone let all of them
// in.
func TestChannelLimitRace(t *testing.T) {
	const limit, clients = 2, 20
	for _, b := range storetest.Stores(t) {
		t.Run(b.Name, func(t *testing.T) {
			f := newFixture(t, b.Store, limit, clients)
			var wg sync.WaitGroup
			found := make(chan string, clients)
			for _, c := range f.c {
				wg.Go(func() {
					if e := parse(t, f.respond(lookup(c.ID))); !e.NotFound {
						found <- c.ID
					}
				})
			}
			wg.Wait()
			close(found)
			var in []string
			for id := range found {
				in = append(in, id)
			}
			if len(in) != limit {
				t.Fatalf("%d of %d simultaneous logins let in, want %d\n%s", len(in), clients, limit, f.logs)
			}
			// The places are held until the reports: a latecomer is refused,
			// then let in once a holder's login fails.
			late := f.c[slices.IndexFunc(f.c, func(c store.Client) bool { return !slices.Contains(in, c.ID) })]
			if e := parse(t, f.respond(lookup(late.ID))); !e.NotFound {
				t.Fatal("a third client let in while two places are held")
			}
			if e := parse(t, f.respond(report(fsapi.ActionClientLogin, in[0], "0"))); e.Params["status"] != "ok" {
				t.Fatalf("failed login report: %+v", e)
			}
			if e := parse(t, f.respond(lookup(late.ID))); e.NotFound {
				t.Fatal("a failed login kept its place")
			}
		})
	}
}

// TestReservationLifetime: a place held by a lookup whose login report never
// comes is given back after ReservationTTL; a successful login report turns
// it into a connection, which holds the place until it closes.
func TestReservationLifetime(t *testing.T) {
	for _, b := range storetest.Stores(t) {
		t.Run(b.Name, func(t *testing.T) {
			f := newFixture(t, b.Store, 1, 3, func(o *Options) { o.ReservationTTL = time.Minute })
			x, y, z := f.c[0], f.c[1], f.c[2]
			steps := []struct {
				name    string
				advance time.Duration
				form    url.Values
				found   bool // for lookups
			}{
				{"x looks up", 0, lookup(x.ID), true},
				{"y refused: x holds the place", 0, lookup(y.ID), false},
				{"x looks up again", 0, lookup(x.ID), true},
				{"y refused before the TTL", 59 * time.Second, lookup(y.ID), false},
				{"y in after the TTL", time.Second, lookup(y.ID), true},
				{"y logs in", 0, report(fsapi.ActionClientLogin, y.ID, "1"), true},
				{"z refused long after: y is connected", time.Hour, lookup(z.ID), false},
				{"y disconnects", 0, report(fsapi.ActionClientDisconnect, y.ID+"@"+fixtures.Domain, ""), true},
				{"z in", 0, lookup(z.ID), true},
			}
			for _, s := range steps {
				f.now = f.now.Add(s.advance)
				e := parse(t, f.respond(s.form))
				if s.form.Get("section") == "directory" {
					if e.NotFound == s.found {
						t.Fatalf("%s: found %v, want %v", s.name, !e.NotFound, s.found)
					}
				} else if e.Params["status"] != "ok" {
					t.Fatalf("%s: answer %+v", s.name, e)
				}
			}
		})
	}
}
