package web

import (
	"errors"
	"fmt"
	"net/http"

	"channels/internal/store"
)

type channelFormData struct {
	ID       string // empty for a new channel
	Topic    string
	Public   bool
	Error    string
	MaxTopic int
}

// channelEdit is the form for changing a channel.
func (s *Server) channelEdit(w http.ResponseWriter, r *http.Request) error {
	ch, err := s.managedChannel(r)
	if err != nil {
		return err
	}
	s.render(w, r, http.StatusOK, "channel_form.html", "Edit channel", channelFormData{
		ID: ch.ID, Topic: ch.Topic, Public: ch.Public, MaxTopic: MaxTopic,
	})
	return nil
}

// channelUpdate saves a channel's topic and visibility.
func (s *Server) channelUpdate(w http.ResponseWriter, r *http.Request) error {
	ch, err := s.managedChannel(r)
	if err != nil {
		return err
	}
	data, ok, err := s.readChannelForm(w, r, channelFormData{ID: ch.ID})
	if err != nil || !ok {
		return err
	}
	ch.Topic, ch.Public = data.Topic, data.Public
	if err := s.store.UpdateChannel(r.Context(), ch); errors.Is(err, store.ErrNotFound) {
		return errNotFound
	} else if err != nil {
		return fmt.Errorf("update channel %s: %w", ch.ID, err)
	}
	http.Redirect(w, r, "/c/"+ch.ID, http.StatusSeeOther)
	return nil
}

// readChannelForm reads the topic and visibility fields. A topic the user
// must fix re-renders the form with a message (ok false, err nil); broken
// form data is an error.
func (s *Server) readChannelForm(w http.ResponseWriter, r *http.Request, data channelFormData) (channelFormData, bool, error) {
	form, err := readForm(r)
	if err != nil {
		return data, false, err
	}
	topic, err := field(form, "topic")
	if err != nil {
		return data, false, err
	}
	public, err := checkbox(form, "public")
	if err != nil {
		return data, false, err
	}
	data.Public, data.MaxTopic = public, MaxTopic
	data.Topic, err = CheckTopic(topic)
	if err != nil {
		data.Error = err.Error()
		title := "New channel"
		if data.ID != "" {
			title = "Edit channel"
		}
		s.render(w, r, http.StatusUnprocessableEntity, "channel_form.html", title, data)
		return data, false, nil
	}
	return data, true, nil
}
