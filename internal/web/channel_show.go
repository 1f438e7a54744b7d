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
	// ICEExpires is when the TURN credentials in ICEServers expire, in
	// Unix seconds (0: never); before then the page fetches fresh ones
	// from ICEURL.
	ICEExpires int64 `json:"iceExpires"`
	// ICETTL is how many seconds of that were left as the page was made;
	// the browser counts from it, as its clock may be off the server's.
	ICETTL int64  `json:"iceTtl"`
	ICEURL string `json:"iceUrl"`
	// ICETransportPolicy is "relay" when calls may use TURN relays only.
	ICETransportPolicy string `json:"iceTransportPolicy"`
	Topic              string `json:"topic"`
	// MaxCall is the most people in one call (-max-call-size, 2 to 6),
	// for the browser client to keep its calls within.
	MaxCall int `json:"maxCall"`
	// Moderate says the browser's user may remove people and lock the
	// channel (its owner, an administrator).
	Moderate bool `json:"moderate"`
	// Locked says the channel is locked: nobody new can join.
	Locked bool `json:"locked"`
	// Removed are the client ids removed from the channel now.
	Removed []string `json:"removed"`
	// ModURL is where the page GETs the moderation state afresh
	// (channel_moderation.go).
	ModURL string `json:"modUrl"`
}

type channelData struct {
	Channel   store.Channel
	Config    channelConfig
	CanManage bool
}

// channelShow is the channel page. It gives the browser its client in the
// channel — the one its session remembers, or a new one.
func (s *Server) channelShow(w http.ResponseWriter, r *http.Request) error {
	u, _ := s.currentUser(r)
	manager := s.manages(r)
	ch, c, err := s.channelAndClient(r)
	if err != nil {
		return err
	}
	var mod store.Moderation
	if manager(ch) {
		mod, err = s.admitManager(r, u, ch, c)
	} else {
		mod, err = s.store.ModerationOf(r.Context(), ch)
	}
	if err != nil {
		return pageModerationError(ch.ID, err)
	}
	ice, err := s.ice.forClient(c.ID)
	if err != nil {
		return err
	}
	// The page carries the client's password: never cache it.
	w.Header().Set("Cache-Control", "no-store")
	s.render(w, r, http.StatusOK, "channel.html", ch.Topic, channelData{
		Channel: ch,
		Config: channelConfig{
			ChannelID:          ch.ID,
			ClientID:           c.ID,
			Password:           c.Password,
			VertoURL:           s.vertoURL(r),
			Domain:             s.cfg.VertoDomain(),
			ICEServers:         ice.ICEServers,
			ICEExpires:         ice.ICEExpires,
			ICETTL:             ice.ICETTL,
			ICEURL:             s.ice.iceURL(ch.ID),
			ICETransportPolicy: s.ice.policy,
			Topic:              ch.Topic,
			MaxCall:            s.maxCall,
			Moderate:           manager(ch),
			Locked:             !mod.Locked.IsZero(),
			Removed:            mod.RemovedIDs(),
			ModURL:             "/c/" + ch.ID + "/moderation",
		},
		CanManage: manager(ch),
	})
	return nil
}
