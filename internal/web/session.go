package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/alexedwards/scs/v2"

	"channels/internal/metrics"
	"channels/internal/store"
)

// Session keys. A browser's client id for a channel lives under
// clientKeyPrefix + channel id, one key per channel.
const (
	userKey         = "user_id"
	clientKeyPrefix = "client:"
	// clientPasswordKeyPrefix + channel id holds that client's password,
	// so the page can re-create a client the sweeper deleted.
	clientPasswordKeyPrefix = "clientpw:"
	// clientLoginKeyPrefix + channel id holds the Unix time (seconds) of
	// that client's last login as the page last saw it, so the page can
	// trust the session about the client for a while (see loggedInTrust).
	clientLoginKeyPrefix = "clientlogin:"
)

func (s *Server) newSessionManager() *scs.SessionManager {
	sm := scs.New()
	sm.Store = s.store.Sessions()
	sm.Codec = sessionCodec{}
	sm.Lifetime = s.cfg.SessionLifetime
	sm.Cookie.Name = "channels_session"
	if s.cfg.Secure() {
		// The __Host- prefix makes browsers refuse the cookie unless it is
		// Secure, host-only and for the whole site.
		sm.Cookie.Name = "__Host-channels_session"
	}
	sm.Cookie.HttpOnly = true
	sm.Cookie.SameSite = http.SameSiteLaxMode
	sm.Cookie.Secure = s.cfg.Secure()
	sm.Cookie.Path = "/"
	sm.Cookie.Persist = true
	return sm
}

type userCtxKey struct{}

// withUser looks up the signed-in user of the request's session and puts it
// in the request's context. A session whose user no longer exists is signed
// out.
func (s *Server) withUser(r *http.Request) (*http.Request, error) {
	ctx := r.Context()
	id := s.sessions.GetInt64(ctx, userKey)
	if id == 0 {
		return r, nil
	}
	u, err := s.store.UserByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		s.sessions.Remove(ctx, userKey)
		return r, nil
	}
	if err != nil {
		return r, fmt.Errorf("load signed-in user: %w", err)
	}
	return r.WithContext(context.WithValue(ctx, userCtxKey{}, u)), nil
}

// currentUser returns the signed-in user, if any.
func (s *Server) currentUser(r *http.Request) (store.User, bool) {
	u, ok := r.Context().Value(userCtxKey{}).(store.User)
	return u, ok
}

// channelAndClient loads the {id} channel and the browser's client in it:
// the one its session remembers, or a new one (remembered in the session)
// when the session has none or one the store no longer knows.
//
// A returning browser costs no query beyond its session's while the
// session vouches for its client (loggedInTrust) and the store read
// the channel within the last second (store.RecentChannel); otherwise one
// query for both. A signed-in browser always gets that query, so the
// owner who just edited a channel sees the change at once.
//
// The session holds the client's password beside its id, so that a client
// the background sweeper deleted (one that never logged in, see
// store.DeleteUnusedClients) comes back with the same id and password: a
// browser that keeps its session keeps its client id. New clients are paid
// for from the address's budget (newClients); over it, the page is a 429.
// While the database holds the ceiling of stored clients (or sessions, for
// a browser without one), a new client is refused with a 503 before
// anything is written, and the address's budget is given back
// (admitNewClient); re-created clients and signed-in users are not.
//
// Moderation (channel_moderation.go) refuses, with a 403 and before
// anything is written: the session's client when it is removed, or not
// admitted to the channel's lock (re-created or not); and a browser that
// would get a new client while the channel is locked or a removed
// client's address is the browser's. A signed-in user who may moderate
// the channel is never refused.
func (s *Server) channelAndClient(r *http.Request) (store.Channel, store.Client, error) {
	ctx := r.Context()
	manager := s.manages(r)
	id := r.PathValue("id")
	if !store.ValidID(id) {
		return store.Channel{}, store.Client{}, errNotFound
	}
	key, pwKey, loginKey := clientKeyPrefix+id, clientPasswordKeyPrefix+id, clientLoginKeyPrefix+id
	clientID := s.sessions.GetString(ctx, key)
	if clientID != "" {
		if ch, c, ok := s.trustedClient(r, id, clientID); ok {
			if err := s.refuseMember(r, ch, c, false); err != nil { // trusted: not signed in
				return store.Channel{}, store.Client{}, err
			}
			return ch, c, nil
		}
		ch, c, err := s.store.ClientInChannel(ctx, clientID, id)
		if err == nil {
			if err := s.refuseMember(r, ch, c, manager(ch)); err != nil {
				return store.Channel{}, store.Client{}, err
			}
			if s.sessions.GetString(ctx, pwKey) != c.Password {
				// A session from before passwords were kept.
				s.sessions.Put(ctx, pwKey, c.Password)
			}
			if !c.LastLogin.IsZero() {
				s.keepSession(ctx)
			}
			s.noteLogin(ctx, loginKey, c)
			return ch, c, nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return store.Channel{}, store.Client{}, fmt.Errorf("look up client %s: %w", clientID, err)
		}
	}
	ch, err := s.channelByID(ctx, id)
	if err != nil {
		return store.Channel{}, store.Client{}, err
	}
	if clientID != "" && store.ValidID(clientID) {
		// The client as it would be re-created: admitted to no lock.
		if err := s.refuseMember(r, ch, store.Client{ID: clientID, ChannelID: ch.ID}, manager(ch)); err != nil {
			return store.Channel{}, store.Client{}, err
		}
	}
	if c, ok, err := s.recreateClient(r, ch, clientID, s.sessions.GetString(ctx, pwKey)); ok || err != nil {
		return ch, c, err
	}
	if err := s.refuseEmbedded(r, ch.ID); err != nil { // before it costs the visitor's budget
		return store.Channel{}, store.Client{}, err
	}
	if err := s.refuseNewcomer(r, ch, manager(ch)); err != nil { // likewise
		return store.Channel{}, store.Client{}, err
	}
	addr, now := clientAddr(r), s.now()
	token, ok, wait := s.newClients.reserve(addr, now)
	if !ok {
		s.log.WarnContext(ctx, "new clients rate limited", "client", addr, "channel", ch.ID)
		s.metrics.RateLimited(metrics.LimitNewClients)
		return store.Channel{}, store.Client{}, &statusError{
			status:     http.StatusTooManyRequests,
			message:    "Too many new visits from your network. Please wait a minute and reload the page.",
			retryAfter: wait,
		}
	}
	newSession := s.sessions.Token(ctx) == ""
	if err := s.admitNewClient(r, newSession); err != nil {
		s.newClients.refund(token, now) // not the visitor's doing
		return store.Channel{}, store.Client{}, err
	}
	c, err := s.store.CreateClientFrom(ctx, ch.ID, addr)
	if err != nil {
		return store.Channel{}, store.Client{}, fmt.Errorf("create client in channel %s: %w", ch.ID, err)
	}
	s.noteStored(newSession)
	if newSession {
		// A session this view creates lives a day unless its browser uses
		// it: a visitor who never calls leaves no 14-day row behind.
		s.sessions.Put(ctx, provisionalKey, int64(1)) // the session codec keeps strings and int64s
		s.sessions.SetDeadline(ctx, s.now().Add(min(provisionalLifetime, s.sessions.Lifetime)))
	}
	s.sessions.Put(ctx, key, c.ID)
	s.sessions.Put(ctx, pwKey, c.Password)
	s.sessions.Remove(ctx, loginKey) // the login of the client this one replaces
	return ch, c, nil
}

// loggedInTrust is how long after a client's last login (as the page last
// saw it) the page takes the session's word that the client exists,
// without looking it up. Only the sweeper deletes clients (besides the
// deletion of their channel, which the page notices through the channel),
// and it keeps a client that logged in for a session lifetime after its
// last login (internal/cli's startSweeper: Idle is the session lifetime);
// half leaves room for clocks that disagree. It is measured with the
// lifetime configured now, as the sweeper's is. A client that never
// logged in is looked up on every view: the sweeper may delete it an hour
// after its creation, and its session is provisional until the view that
// sees its first login (keepSession).
func (s *Server) loggedInTrust() time.Duration { return s.sessions.Lifetime / 2 }

// noteLogin records in the session the last login of c (as just read),
// when it is newer than the one recorded.
func (s *Server) noteLogin(ctx context.Context, loginKey string, c store.Client) {
	if at := c.LastLogin.Unix(); !c.LastLogin.IsZero() && at > s.sessions.GetInt64(ctx, loginKey) {
		s.sessions.Put(ctx, loginKey, at)
	}
}

// trustedClient returns the channel and the client the session names
// without a query: when the session saw the client's last login less than
// loggedInTrust ago, the browser is not signed in, and the store read the
// channel less than store.RecentChannelAge ago. A channel deleted
// meanwhile (here or by another process) is answered for at most that
// long; its client is gone with it, so the page's login fails and the
// next view is a 404.
func (s *Server) trustedClient(r *http.Request, channelID, clientID string) (store.Channel, store.Client, bool) {
	ctx := r.Context()
	login := s.sessions.GetInt64(ctx, clientLoginKeyPrefix+channelID)
	if login == 0 || !s.now().Before(time.Unix(login, 0).Add(s.loggedInTrust())) {
		return store.Channel{}, store.Client{}, false
	}
	if _, signedIn := s.currentUser(r); signedIn {
		return store.Channel{}, store.Client{}, false
	}
	pw := s.sessions.GetString(ctx, clientPasswordKeyPrefix+channelID)
	if pw == "" {
		return store.Channel{}, store.Client{}, false
	}
	ch, ok := s.store.RecentChannel(channelID)
	if !ok || !ch.Locked.IsZero() {
		// While the channel is locked, the client's admission is read
		// with it.
		return store.Channel{}, store.Client{}, false
	}
	return ch, store.Client{ID: clientID, Password: pw, ChannelID: channelID}, true
}

// provisionalKey marks a session that a channel page view created and that
// expires after provisionalLifetime (or the configured lifetime, if
// shorter) unless keepSession gives it the full lifetime: when one of its
// clients has logged in, or its browser signs in.
const (
	provisionalKey      = "provisional"
	provisionalLifetime = 24 * time.Hour
)

// keepSession gives a provisional session the configured lifetime.
func (s *Server) keepSession(ctx context.Context) {
	if s.sessions.GetInt64(ctx, provisionalKey) != 0 {
		s.sessions.Remove(ctx, provisionalKey)
		s.sessions.SetDeadline(ctx, s.now().Add(s.sessions.Lifetime))
	}
}

// recreateClient puts back the client the session names, with the id and
// password the session holds, when the store no longer has it (the sweeper
// deleted it). It reports false when the session cannot: no password kept
// (a session from before they were), or the id is taken in another
// channel.
func (s *Server) recreateClient(r *http.Request, ch store.Channel, id, password string) (store.Client, bool, error) {
	if id == "" || password == "" {
		return store.Client{}, false, nil
	}
	if !store.ValidID(id) {
		return store.Client{}, false, nil
	}
	ctx := r.Context()
	c := store.Client{ID: id, Password: password, ChannelID: ch.ID, Created: s.now(), Origin: clientAddr(r)}
	err := s.store.PutClient(ctx, c)
	if errors.Is(err, store.ErrConflict) {
		// Another request of the same browser put it back first, or the id
		// belongs elsewhere.
		_, got, err := s.store.ClientInChannel(ctx, id, ch.ID)
		if err != nil || got.Password != password {
			return store.Client{}, false, nil
		}
		return got, true, nil
	}
	if err != nil {
		return store.Client{}, false, fmt.Errorf("re-create client %s: %w", id, err)
	}
	s.noteStored(false) // never refused: the session holds this client
	s.log.DebugContext(ctx, "re-created swept client", "client", id, "channel", ch.ID)
	return c, true, nil
}
