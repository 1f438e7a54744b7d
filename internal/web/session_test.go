package web

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"channels/internal/config"
	"channels/internal/store"
	"channels/internal/store/storetest"
)

// TestSessionRules runs the session rules of DESIGN.md end to end, over
// HTTP with cookie jars, on every database.
func TestSessionRules(t *testing.T) {
	for _, b := range storetest.Stores(t) {
		t.Run(b.Name, func(t *testing.T) {
			s := newSite(t, b.Store, nil)
			s.user("alice", "alice's password", false)
			lobby := s.channel("Lobby", true, 0)
			other := s.channel("Other", false, 0)

			a := s.browser()
			first := a.channelPage(lobby.ID)
			if first.ClientID == "" || first.Password == "" || first.ChannelID != lobby.ID {
				t.Fatalf("channel page config = %+v", first)
			}
			c, err := s.store.ClientByID(t.Context(), first.ClientID)
			if err != nil || c.Password != first.Password || c.ChannelID != lobby.ID {
				t.Fatalf("client in store = %+v, %v; page says %+v", c, err, first)
			}

			if again := a.channelPage(lobby.ID); again.ClientID != first.ClientID || again.Password != first.Password {
				t.Errorf("same browser, second visit: client %s, want %s", again.ClientID, first.ClientID)
			}
			if o := a.channelPage(other.ID); o.ClientID == first.ClientID {
				t.Errorf("another channel got the same client id %s", o.ClientID)
			}

			b2 := s.browser()
			if got := b2.channelPage(lobby.ID); got.ClientID == first.ClientID {
				t.Errorf("another browser got the same client id %s", got.ClientID)
			}

			before := a.sessionCookie()
			a.signIn("alice", "alice's password")
			after := a.sessionCookie()
			if after == "" || after == before {
				t.Errorf("sign-in: session cookie %q → %q, want a new value", before, after)
			}
			if got := a.channelPage(lobby.ID); got.ClientID != first.ClientID {
				t.Errorf("after sign-in: client %s, want %s (kept)", got.ClientID, first.ClientID)
			}
			// The old session key is gone: presenting it gets a new session.
			if got := withCookie(t, s, before, lobby.ID); got.ClientID == first.ClientID {
				t.Errorf("the pre-sign-in session key still works")
			}

			a.signOut()
			if got := a.channelPage(lobby.ID); got.ClientID == first.ClientID {
				t.Errorf("after sign-out: client %s, want a new one", got.ClientID)
			}
		})
	}
}

// TestSessionExpiry: an expired session is replaced, so client ids change —
// whether the browser drops the cookie or still sends it.
func TestSessionExpiry(t *testing.T) {
	for _, b := range storetest.Stores(t) {
		t.Run(b.Name, func(t *testing.T) {
			const lifetime = time.Hour
			s := newSite(t, b.Store, func(c *config.Config) { c.SessionLifetime = lifetime })
			s.freezeClock()
			b.Store.SetClock(s.srv.now) // sessions expire by the store's clock
			lobby := s.channel("Lobby", true, 0)
			a := s.browser()
			first := a.channelPage(lobby.ID)
			token := a.sessionCookie()
			if got := a.channelPage(lobby.ID); got.ClientID != first.ClientID {
				t.Fatalf("before expiry: client %s, want %s", got.ClientID, first.ClientID)
			}
			s.advance(lifetime + time.Second)
			if got := a.channelPage(lobby.ID); got.ClientID == first.ClientID {
				t.Errorf("after expiry (jar): client %s kept", got.ClientID)
			}
			// A browser that keeps sending the expired token fares the same:
			// the server no longer knows it.
			if got := withCookie(t, s, token, lobby.ID); got.ClientID == first.ClientID {
				t.Errorf("after expiry (stale cookie): client %s kept", got.ClientID)
			}
		})
	}
}

// withCookie opens a channel page with a hand-set session cookie.
func withCookie(t *testing.T, s *site, token, channelID string) channelConfig {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.ts.URL+"/c/"+channelID, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.AddCookie(&http.Cookie{Name: "channels_session", Value: token})
	b := s.browser()
	r := b.do(req)
	if r.status != http.StatusOK {
		t.Fatalf("status %d", r.status)
	}
	return parseConfig(t, r.body)
}

// TestSessionCookie checks the cookie's attributes.
func TestSessionCookie(t *testing.T) {
	tests := []struct {
		name, baseURL, cookie string
		secure                bool
	}{
		{"http", "", "channels_session", false},
		{"https", "https://channels.example", "__Host-channels_session", true},
	}
	st := storetest.SQLite(t).Store
	lobby, err := st.CreateChannel(t.Context(), "Lobby", true, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSite(t, st, func(c *config.Config) {
				if tt.baseURL != "" {
					c.BaseURL = tt.baseURL
				}
				c.SessionLifetime = 3 * time.Hour
			})
			r := s.browser().get("/c/" + lobby.ID)
			cookies := (&http.Response{Header: r.header}).Cookies()
			if len(cookies) != 1 {
				t.Fatalf("Set-Cookie: %q", r.header.Values("Set-Cookie"))
			}
			c := cookies[0]
			if c.Name != tt.cookie || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Secure != tt.secure || c.Path != "/" {
				t.Errorf("cookie %s", c)
			}
			if c.MaxAge < 3*3600-5 || c.MaxAge > 3*3600+5 {
				t.Errorf("cookie Max-Age %d, want the session lifetime", c.MaxAge)
			}
		})
	}
}

// TestIndexNoCookie: merely looking at the index does not create sessions.
func TestIndexNoCookie(t *testing.T) {
	s := newSite(t, storetest.SQLite(t).Store, nil)
	if r := s.browser().get("/"); len(r.header.Values("Set-Cookie")) != 0 {
		t.Errorf("GET / set cookies %q", r.header.Values("Set-Cookie"))
	}
}

// TestChannelAndClientReplacesStaleClient: a session naming a client the store no
// longer has, or one of another channel, gets a new client.
func TestChannelAndClientReplacesStaleClient(t *testing.T) {
	for _, be := range storetest.Stores(t) {
		t.Run(be.Name, func(t *testing.T) { testChannelAndClientReplacesStaleClient(t, be.Store) })
	}
}

func testChannelAndClientReplacesStaleClient(t *testing.T, st *store.Store) {
	s := newSite(t, st, nil)
	a := s.channel("A", true, 0)
	b := s.channel("B", true, 0)
	inB, err := s.store.CreateClient(t.Context(), b.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, stale := range []string{"0b6f1c1e-5d43-4a6e-9d1e-8e1f4b3c2a10", inB.ID, "not even a uuid"} {
		ctx, err := s.srv.sessions.Load(t.Context(), "")
		if err != nil {
			t.Fatal(err)
		}
		s.srv.sessions.Put(ctx, clientKeyPrefix+a.ID, stale)
		r := httptest.NewRequestWithContext(ctx, http.MethodGet, "/c/"+a.ID, nil)
		r.SetPathValue("id", a.ID)
		ch, c, err := s.srv.channelAndClient(r)
		if err != nil {
			t.Fatalf("stale %q: %v", stale, err)
		}
		if c.ID == stale || c.ChannelID != a.ID || ch.ID != a.ID {
			t.Errorf("stale %q: got client %+v", stale, c)
		}
		if got := s.srv.sessions.GetString(ctx, clientKeyPrefix+a.ID); got != c.ID {
			t.Errorf("session now holds %q, want %q", got, c.ID)
		}
	}
}

// TestCorruptSessionReplaced: a session whose stored data cannot be decoded
// is replaced by a fresh one instead of failing every visit.
func TestCorruptSessionReplaced(t *testing.T) {
	s := newSite(t, storetest.SQLite(t).Store, nil)
	lobby := s.channel("Lobby", true, 0)
	token := "corrupt-session-token-0123456789abcdefghijk"
	if err := s.store.Sessions().CommitCtx(t.Context(), token, []byte("not gob"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if c := withCookie(t, s, token, lobby.ID); c.ClientID == "" {
		t.Errorf("no client for a browser with a corrupt session: %+v", c)
	}
}
