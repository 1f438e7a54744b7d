package web

import "net/http"

// routes is the whole URL space of the web application.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()

	mux.Handle("GET /{$}", s.page(s.index))
	mux.Handle("GET /c/{id}", s.page(s.channelShow))

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

	mux.HandleFunc("GET /healthz", s.healthz)
	if s.static != nil {
		mux.Handle("GET /static/", s.static)
	}

	// Everything else, including wrong methods on known paths, is a 404
	// page rather than the mux's plain-text answer.
	mux.Handle("/", s.page(s.notFound))
	return mux
}
