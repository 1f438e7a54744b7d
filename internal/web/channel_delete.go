package web

import (
	"errors"
	"fmt"
	"net/http"

	"channels/internal/store"
)

// channelDeleteShow asks for confirmation before deleting.
func (s *Server) channelDeleteShow(w http.ResponseWriter, r *http.Request) error {
	ch, err := s.managedChannel(r)
	if err != nil {
		return err
	}
	s.render(w, r, http.StatusOK, "channel_delete.html", "Delete channel", ch)
	return nil
}

// channelDelete deletes a channel and its clients.
func (s *Server) channelDelete(w http.ResponseWriter, r *http.Request) error {
	ch, err := s.managedChannel(r)
	if err != nil {
		return err
	}
	if _, err := readForm(r); err != nil {
		return err
	}
	if err := s.store.DeleteChannel(r.Context(), ch.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("delete channel %s: %w", ch.ID, err)
	}
	u, _ := s.currentUser(r)
	s.log.InfoContext(r.Context(), "channel deleted", "channel", ch.ID, "user", u.Name)
	http.Redirect(w, r, "/channels", http.StatusSeeOther)
	return nil
}
