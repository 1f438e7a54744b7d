package web

import (
	"fmt"
	"net/http"

	"channels/internal/store"
)

type indexData struct {
	Channels []store.Channel
}

// index lists the public channels, newest first.
func (s *Server) index(w http.ResponseWriter, r *http.Request) error {
	chans, err := s.store.PublicChannels(r.Context())
	if err != nil {
		return fmt.Errorf("list public channels: %w", err)
	}
	s.render(w, r, http.StatusOK, "index.html", "Channels", indexData{Channels: chans})
	return nil
}
