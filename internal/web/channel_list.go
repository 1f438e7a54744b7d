package web

import (
	"fmt"
	"net/http"

	"channels/internal/store"
)

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
