package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"channels/internal/store"
)

// channel loads the channel named by the {id} path value; a malformed or
// unknown id is a 404.
func (s *Server) channel(r *http.Request) (store.Channel, error) {
	id := r.PathValue("id")
	if !store.ValidID(id) {
		return store.Channel{}, errNotFound
	}
	return s.channelByID(r.Context(), id)
}

// channelByID loads a channel whose id is already known to be well formed;
// an unknown id is a 404.
func (s *Server) channelByID(ctx context.Context, id string) (store.Channel, error) {
	ch, err := s.store.ChannelByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.Channel{}, errNotFound
	}
	if err != nil {
		return store.Channel{}, fmt.Errorf("load channel %s: %w", id, err)
	}
	return ch, nil
}

// requireUser returns the signed-in user, or errSignInNeeded.
func (s *Server) requireUser(r *http.Request) (store.User, error) {
	u, ok := s.currentUser(r)
	if !ok {
		return store.User{}, errSignInNeeded
	}
	return u, nil
}

// managedChannel loads the {id} channel for a signed-in user allowed to
// manage it: its owner or an administrator.
func (s *Server) managedChannel(r *http.Request) (store.Channel, error) {
	u, err := s.requireUser(r)
	if err != nil {
		return store.Channel{}, err
	}
	ch, err := s.channel(r)
	if err != nil {
		return store.Channel{}, err
	}
	if !canManage(u, ch) {
		return store.Channel{}, errForbidden
	}
	return ch, nil
}

// canManage reports whether u may edit and delete ch.
func canManage(u store.User, ch store.Channel) bool {
	return u.Admin || (ch.OwnerID != 0 && ch.OwnerID == u.ID)
}
