package directory

import (
	"context"
	"encoding/xml"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"channels/internal/fixtures"
	"channels/internal/fsapi"
	"channels/internal/store"
	"channels/internal/store/storetest"
)

// result is the <result> element of a report's answer, as report.lua
// reads it.
type result struct {
	Status, Channel, Cleared, Members, Truncated string
	present                                      map[string]bool
}

func parseResult(t *testing.T, doc []byte) result {
	t.Helper()
	var d struct {
		Section struct {
			Name   string `xml:"name,attr"`
			Result struct {
				Attrs []xml.Attr `xml:",any,attr"`
			} `xml:"result"`
		} `xml:"section"`
	}
	if err := xml.Unmarshal(doc, &d); err != nil || d.Section.Name != "result" {
		t.Fatalf("%v: %s", err, doc)
	}
	a := map[string]string{}
	r := result{present: map[string]bool{}}
	for _, at := range d.Section.Result.Attrs {
		a[at.Name.Local] = at.Value
		r.present[at.Name.Local] = true
	}
	r.Status, r.Channel, r.Cleared, r.Members, r.Truncated = a["status"], a["channel"], a["cleared"], a["members"], a["truncated"]
	return r
}

// TestLoginReportNamesChannel: a successful login report is answered with
// the client's channel — from the cache the lookup filled, from the store
// without a cache, with or without a channel limit — and a failed one
// without.
func TestLoginReportNamesChannel(t *testing.T) {
	for _, b := range storetest.Stores(t) {
		t.Run(b.Name, func(t *testing.T) {
			for _, tt := range []struct {
				name   string
				max    int
				ttl    time.Duration
				lookup bool // a directory lookup first
			}{
				{"after a lookup", 0, 0, true},
				{"without a lookup", 0, 0, false},
				{"cache off", 0, -1, true},
				{"channel limit", 3, 0, true},
			} {
				t.Run(tt.name, func(t *testing.T) {
					f := newFixture(t, b.Store, tt.max, 1, func(o *Options) { o.CacheTTL = tt.ttl })
					id := f.c[0].ID
					if tt.lookup {
						if e := parse(t, f.respond(lookup(id))); e.NotFound {
							t.Fatal("lookup not found")
						}
					}
					before := b.Store.Queries()
					r := parseResult(t, f.respond(report(fsapi.ActionClientLogin, id, "1")))
					if r.Status != "ok" || r.Channel != f.ch.ID {
						t.Fatalf("answer %+v, want channel %s", r, f.ch.ID)
					}
					// The lookup left the channel in the cache: the report
					// costs its one write.
					if n := b.Store.Queries() - before; tt.lookup && tt.ttl >= 0 && n != 1 {
						t.Errorf("%d queries, want 1", n)
					}
					r = parseResult(t, f.respond(report(fsapi.ActionClientLogin, id, "0")))
					if r.Status != "ok" || r.present["channel"] {
						t.Errorf("failed login: %+v", r)
					}
				})
			}
		})
	}
}

// TestDisconnectNamesMembers: a disconnect report with members=1 that
// clears the client names exactly the other connected clients of its
// channel, most recently connected first, at most MaxLeaveMembers; one
// that clears nothing (an older socket) or does not ask names nobody, and
// without the field the report costs what it did (the embedded hub's).
func TestDisconnectNamesMembers(t *testing.T) {
	for _, b := range storetest.Stores(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			type want struct {
				cleared   bool
				members   []string
				truncated bool
			}
			// Clients: 0 leaves; 1, 2, 3 connected in that order; 4 never
			// connected; one client of another channel connected.
			setup := func(t *testing.T, max int) (*fixture, []string) {
				f := newFixture(t, b.Store, 0, 5, func(o *Options) { o.MaxLeaveMembers = max })
				var ids []string
				for i, c := range f.c {
					ids = append(ids, c.ID)
					if i == 4 {
						continue
					}
					f.now = f.now.Add(time.Second)
					form := report(fsapi.ActionClientLogin, c.ID, "1")
					form.Set("address", "127.0.0.1:100"+string(rune('0'+i)))
					if r := parseResult(t, f.respond(form)); r.Status != "ok" {
						t.Fatal(r)
					}
				}
				other, err := b.Store.CreateChannel(ctx, "other", false, 0)
				if err != nil {
					t.Fatal(err)
				}
				o, err := b.Store.CreateClient(ctx, other.ID)
				if err != nil {
					t.Fatal(err)
				}
				if err := b.Store.SetClientConnected(ctx, o.ID, f.now); err != nil {
					t.Fatal(err)
				}
				return f, ids
			}
			disc := func(id, addr string, members bool) url.Values {
				form := report(fsapi.ActionClientDisconnect, id+"@"+fixtures.Domain, "")
				form.Set("address", addr)
				if members {
					form.Set(MembersField, "1")
				}
				return form
			}
			check := func(t *testing.T, f *fixture, form url.Values, w want) {
				t.Helper()
				r := parseResult(t, f.respond(form))
				if r.Status != "ok" || (r.Cleared == "true") != w.cleared || r.present["cleared"] != w.cleared || r.present["members"] != w.cleared {
					t.Fatalf("answer %+v, want %+v", r, w)
				}
				var got []string
				if r.Members != "" {
					got = strings.Split(r.Members, ",")
				}
				if !slices.Equal(got, w.members) || (r.Truncated == "true") != w.truncated || r.present["truncated"] != w.truncated {
					t.Errorf("members %q truncated %q, want %q %v", got, r.Truncated, w.members, w.truncated)
				}
			}

			t.Run("last socket", func(t *testing.T) {
				f, ids := setup(t, 0)
				check(t, f, disc(ids[0], "127.0.0.1:1000", true), want{true, []string{ids[3], ids[2], ids[1]}, false})
			})
			t.Run("capped", func(t *testing.T) {
				f, ids := setup(t, 2)
				check(t, f, disc(ids[0], "127.0.0.1:1000", true), want{true, []string{ids[3], ids[2]}, true})
			})
			t.Run("cap reached exactly", func(t *testing.T) {
				f, ids := setup(t, 3)
				check(t, f, disc(ids[0], "127.0.0.1:1000", true), want{true, []string{ids[3], ids[2], ids[1]}, false})
			})
			t.Run("older socket", func(t *testing.T) {
				f, ids := setup(t, 0)
				check(t, f, disc(ids[0], "127.0.0.1:9999", true), want{})
				if c, _ := b.Store.ClientByID(ctx, ids[0]); c.Connected.IsZero() {
					t.Error("an older socket's close disconnected the client")
				}
			})
			t.Run("alone", func(t *testing.T) {
				f, ids := setup(t, 0)
				for _, i := range []int{1, 2, 3} {
					check(t, f, disc(ids[i], "127.0.0.1:100"+string(rune('0'+i)), false), want{})
				}
				check(t, f, disc(ids[0], "127.0.0.1:1000", true), want{cleared: true})
			})
			t.Run("not asked: one query", func(t *testing.T) {
				f, ids := setup(t, 0)
				before := b.Store.Queries()
				check(t, f, disc(ids[0], "127.0.0.1:1000", false), want{})
				if n := b.Store.Queries() - before; n != 1 {
					t.Errorf("%d queries, want 1", n)
				}
			})
			t.Run("unknown client", func(t *testing.T) {
				f, _ := setup(t, 0)
				out := f.respond(disc("00000000-0000-4000-8000-000000000000", "127.0.0.1:1000", true))
				if string(out) != string(fsapi.NotFound()) {
					t.Errorf("answer %s", out)
				}
			})
		})
	}
}

// TestDisconnectMembersStoreError: a failing member query is an error (the
// not-found answer, so report.lua tells nobody), not an empty list.
func TestDisconnectMembersStoreError(t *testing.T) {
	b := storetest.SQLite(t)
	st := &failingMembers{Store: b.Store}
	f := newFixture(t, b.Store, 0, 2, func(o *Options) { o.Store = st })
	for _, c := range f.c {
		if err := b.Store.SetClientConnected(context.Background(), c.ID, f.now); err != nil {
			t.Fatal(err)
		}
	}
	form := report(fsapi.ActionClientDisconnect, f.c[0].ID, "")
	form.Set(MembersField, "1")
	if out := f.respond(form); string(out) != string(fsapi.NotFound()) {
		t.Errorf("answer %s", out)
	}
}

type failingMembers struct{ *store.Store }

func (failingMembers) ConnectedClients(context.Context, string, string, int) ([]string, error) {
	return nil, context.DeadlineExceeded
}

// BenchmarkDisconnectReport measures a login report followed by the
// disconnect report of the same socket, in a channel of 10 connected
// clients on SQLite: as the embedded hub sends it ("plain") and as the
// pack's report.lua does (members=1: one more query, the answer names 9).
func BenchmarkDisconnectReport(b *testing.B) {
	for _, members := range []bool{false, true} {
		name := "plain"
		if members {
			name = "members"
		}
		b.Run(name, func(b *testing.B) {
			bk := storetest.SQLite(b)
			f := newFixture(b, bk.Store, 0, 10)
			for _, c := range f.c[1:] {
				if err := bk.Store.SetClientConnected(context.Background(), c.ID, f.now); err != nil {
					b.Fatal(err)
				}
			}
			id := f.c[0].ID
			login := report(fsapi.ActionClientLogin, id, "1")
			disc := report(fsapi.ActionClientDisconnect, id+"@"+fixtures.Domain, "")
			if members {
				disc.Set(MembersField, "1")
			}
			for b.Loop() {
				f.respond(login)
				f.respond(disc)
			}
		})
	}
}
