package web

import (
	"net/http"
	"strings"

	"channels/internal/store"
)

// routes is the whole URL space of the web application.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()

	mux.Handle("GET /{$}", s.page(s.index))
	mux.Handle("GET /c/{id}", s.page(s.channelShow))
	mux.Handle("GET /c/{id}/ice", s.page(s.channelICE))

	mux.Handle("GET /signin", s.page(s.signInShow))
	mux.Handle("POST /signin", s.page(s.signInCheck))
	mux.Handle("POST /signout", s.page(s.signOut))

	mux.Handle("GET /channels", s.page(s.channelList))
	mux.Handle("GET /channels/new", s.page(s.channelNew))
	mux.Handle("POST /channels", s.page(s.channelCreate))
	mux.Handle("GET /c/{id}/edit", s.page(s.channelEdit))
	mux.Handle("POST /c/{id}/edit", s.page(s.channelUpdate))
	mux.Handle("GET /c/{id}/delete", s.page(s.channelDeleteShow))
	mux.Handle("POST /c/{id}/delete", s.page(s.channelDelete))

	mux.Handle("POST /c/{id}/remove", s.page(s.api(s.channelRemove)))
	mux.Handle("POST /c/{id}/unremove", s.page(s.api(s.channelUnremove)))
	mux.Handle("POST /c/{id}/lock", s.page(s.api(s.channelLock)))
	mux.Handle("GET /c/{id}/moderation", s.page(s.api(s.channelModeration)))

	mux.HandleFunc("GET /healthz", s.healthz)
	if s.static != nil {
		mux.Handle("GET /static/", s.static)
	}

	// Everything else, including wrong methods on known paths, is a 404
	// page rather than the mux's plain-text answer.
	mux.Handle("/", s.page(s.notFound))
	return canonicalChannelURLs(mux)
}

// canonicalChannelURLs sends GET and HEAD requests for a channel URL
// written with an upper-case id or a trailing slash (typed, or pasted from
// a chat that changed it) to the one URL the handlers accept, with a 301
// and the query string kept. It runs before the mux (whose "/c/{id}" does
// not match "/c/{id}/") and before page, so the redirect neither loads nor
// creates a session or a client.
//
// Other methods are left to the mux, which answers 404: the site's own
// forms always post to canonical URLs, and a 308 would invite a client to
// resend a form body to another URL for no one's benefit.
func canonicalChannelURLs(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			if to, ok := canonicalChannelPath(r.URL.Path); ok {
				if r.URL.RawQuery != "" {
					to += "?" + r.URL.RawQuery
				}
				http.Redirect(w, r, to, http.StatusMovedPermanently)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// canonicalChannelPath returns the canonical form of p when p is a channel
// URL ("/c/{id}", "/c/{id}/edit" or "/c/{id}/delete") that differs from it
// only by the case of the id or by one trailing slash. Anything else,
// canonical URLs included, is false. The result is built from a checked id
// and a fixed suffix, so it can only name a page of this site.
func canonicalChannelPath(p string) (string, bool) {
	rest, ok := strings.CutPrefix(p, "/c/")
	if !ok {
		return "", false
	}
	trimmed := strings.TrimSuffix(rest, "/")
	id, suffix, _ := strings.Cut(trimmed, "/")
	switch suffix {
	case "", "edit", "delete":
	default:
		return "", false
	}
	lower := strings.ToLower(id)
	if !store.ValidID(lower) {
		return "", false
	}
	to := "/c/" + lower
	if suffix != "" {
		to += "/" + suffix
	}
	if to == p {
		return "", false
	}
	return to, true
}
