package web

import (
	"fmt"
	"net/http"
)

// channelNew is the form for a new channel.
func (s *Server) channelNew(w http.ResponseWriter, r *http.Request) error {
	if _, err := s.requireUser(r); err != nil {
		return err
	}
	s.render(w, r, http.StatusOK, "channel_form.html", "New channel", channelFormData{Public: true, MaxTopic: MaxTopic})
	return nil
}

// channelCreate creates a channel owned by the signed-in user.
func (s *Server) channelCreate(w http.ResponseWriter, r *http.Request) error {
	u, err := s.requireUser(r)
	if err != nil {
		return err
	}
	data, ok, err := s.readChannelForm(w, r, channelFormData{})
	if err != nil || !ok {
		return err
	}
	ch, err := s.store.CreateChannel(r.Context(), data.Topic, data.Public, u.ID)
	if err != nil {
		return fmt.Errorf("create channel: %w", err)
	}
	s.log.InfoContext(r.Context(), "channel created", "channel", ch.ID, "user", u.Name, "public", ch.Public)
	http.Redirect(w, r, "/c/"+ch.ID, http.StatusSeeOther)
	return nil
}
