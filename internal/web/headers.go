package web

import (
	"net/http"
	"net/url"
	"strings"
)

// secure wraps the whole application: cross-site request protection for
// every state-changing request, and the security headers on every response.
func (s *Server) secure(next http.Handler) http.Handler {
	cop := http.NewCrossOriginProtection()
	if u, err := url.Parse(s.cfg.BaseURL); err == nil {
		// Behind a proxy that rewrites Host, the site's own origin still
		// counts as same-origin.
		cop.AddTrustedOrigin(u.Scheme + "://" + u.Host) //nolint:errcheck // validated by config
	}
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if moderationAction(r.URL.Path) {
			// The manager's page fetches these and reads JSON.
			writeJSON(w, http.StatusForbidden, map[string]string{"error": "This request came from another site, so it was refused."})
			return
		}
		s.render(w, r, http.StatusForbidden, "error.html", "Forbidden", errorData{
			Status:  http.StatusForbidden,
			Message: "This request came from another site, so it was refused. Please use the form on this site.",
		})
	}))
	protected := cop.Handler(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", s.csp(r))
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		protected.ServeHTTP(w, r)
	})
}

// csp is the Content-Security-Policy: everything from this site only, no
// inline script or style, plus WebSocket connections to the signalling
// server.
func (s *Server) csp(r *http.Request) string {
	connect := "'self'"
	if u, err := url.Parse(s.vertoURL(r)); err == nil && u.Host != "" {
		connect += " " + u.Scheme + "://" + u.Host
	}
	return strings.Join([]string{
		"default-src 'self'",
		"script-src 'self'",
		"style-src 'self'",
		"connect-src " + connect,
		"img-src 'self' data:",
		"media-src 'self' blob:",
		"object-src 'none'",
		"frame-ancestors 'none'",
		"base-uri 'none'",
		"form-action 'self'",
	}, "; ")
}

// vertoURL is the WebSocket URL the browser signals through: the configured
// one, or the embedded hub at /verto on the host the page was asked from
// (ws: or wss: after the base URL's scheme).
func (s *Server) vertoURL(r *http.Request) string {
	if s.cfg.VertoURL != "" {
		return s.cfg.VertoURL
	}
	scheme := "ws"
	if s.cfg.Secure() {
		scheme = "wss"
	}
	host := r.Host
	if !plainHost(host) {
		u, _ := url.Parse(s.cfg.BaseURL)
		host = u.Host
	}
	return scheme + "://" + host + "/verto"
}

// plainHost reports whether h is a host[:port] made of the characters of
// DNS names and IP literals only, so it cannot smuggle anything into a URL
// or a header.
func plainHost(h string) bool {
	if h == "" || len(h) > 255 {
		return false
	}
	for _, c := range h {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '.', c == '-', c == ':', c == '[', c == ']':
		default:
			return false
		}
	}
	return true
}
