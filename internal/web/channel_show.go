package web

import (
	"net/http"

	"channels/internal/config"
	"channels/internal/store"
)

// channelConfig is what the browser client reads from the channel page's
// JSON script element (docs/CONTRACTS.md).
type channelConfig struct {
	ChannelID  string             `json:"channelId"`
	ClientID   string             `json:"clientId"`
	Password   string             `json:"password"`
	VertoURL   string             `json:"vertoUrl"`
	Domain     string             `json:"domain"`
	ICEServers []config.ICEServer `json:"iceServers"`
	Topic      string             `json:"topic"`
}

type channelData struct {
	Channel   store.Channel
	Config    channelConfig
	CanManage bool
}

// channelShow is the channel page. It gives the browser its client in the
// channel — the one its session remembers, or a new one.
func (s *Server) channelShow(w http.ResponseWriter, r *http.Request) error {
	ch, c, err := s.channelAndClient(r)
	if err != nil {
		return err
	}
	ice := s.cfg.ICEServers
	if ice == nil {
		ice = []config.ICEServer{}
	}
	u, signedIn := s.currentUser(r)
	// The page carries the client's password: never cache it.
	w.Header().Set("Cache-Control", "no-store")
	s.render(w, r, http.StatusOK, "channel.html", ch.Topic, channelData{
		Channel: ch,
		Config: channelConfig{
			ChannelID:  ch.ID,
			ClientID:   c.ID,
			Password:   c.Password,
			VertoURL:   s.vertoURL(r),
			Domain:     s.cfg.VertoDomain(),
			ICEServers: ice,
			Topic:      ch.Topic,
		},
		CanManage: signedIn && canManage(u, ch),
	})
	return nil
}
