package web

import (
	"fmt"
	"net/http"
)

// signOut destroys the session: the browser's next channel visit gets a new
// client.
func (s *Server) signOut(w http.ResponseWriter, r *http.Request) error {
	if err := s.sessions.Destroy(r.Context()); err != nil {
		return fmt.Errorf("destroy session: %w", err)
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
	return nil
}
