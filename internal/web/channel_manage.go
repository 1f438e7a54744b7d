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

type channelListData struct {
	Channels []store.Channel
}

// channelList lists the channels the signed-in user manages: their own, or
// all of them for an administrator.
func (s *Server) channelList(w http.ResponseWriter, r *http.Request) error {
	u, err := s.requireUser(r)
	if err != nil {
		return err
	}
	var chans []store.Channel
	if u.Admin {
		chans, err = s.store.Channels(r.Context())
	} else {
		chans, err = s.store.ChannelsOwnedBy(r.Context(), u.ID)
	}
	if err != nil {
		return fmt.Errorf("list channels of %s: %w", u.Name, err)
	}
	s.render(w, r, http.StatusOK, "channel_list.html", "Manage channels", channelListData{Channels: chans})
	return nil
}

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
