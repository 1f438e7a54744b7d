package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/alexedwards/scs/v2"

	"channels/internal/store"
)

// Session keys. A browser's client id for a channel lives under
// clientKeyPrefix + channel id, one key per channel.
const (
	userKey         = "user_id"
	clientKeyPrefix = "client:"
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
// when the session has none or one the store no longer knows. A returning
// browser costs one query for both.
func (s *Server) channelAndClient(r *http.Request) (store.Channel, store.Client, error) {
	ctx := r.Context()
	id := r.PathValue("id")
	if !ValidChannelID(id) {
		return store.Channel{}, store.Client{}, errNotFound
	}
	key := clientKeyPrefix + id
	if clientID := s.sessions.GetString(ctx, key); clientID != "" {
		ch, c, err := s.store.ClientInChannel(ctx, clientID, id)
		if err == nil {
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
	c, err := s.store.CreateClient(ctx, ch.ID)
	if err != nil {
		return store.Channel{}, store.Client{}, fmt.Errorf("create client in channel %s: %w", ch.ID, err)
	}
	s.sessions.Put(ctx, key, c.ID)
	return ch, c, nil
}
