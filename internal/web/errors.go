package web

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// statusError is an error meant for the person at the browser: a status
// code and a message the error page shows.
type statusError struct {
	status  int
	message string
	// retryAfter, when positive, is sent as Retry-After.
	retryAfter time.Duration
}

func (e *statusError) Error() string { return fmt.Sprintf("%d: %s", e.status, e.message) }

func errorf(status int, format string, args ...any) error {
	return &statusError{status: status, message: fmt.Sprintf(format, args...)}
}

var (
	errNotFound     = &statusError{status: http.StatusNotFound, message: "There is nothing here. The link may be mistyped, or the channel may have been deleted."}
	errForbidden    = &statusError{status: http.StatusForbidden, message: "You may not change this channel: only its owner and administrators may."}
	errSignInNeeded = &statusError{status: http.StatusUnauthorized, message: "Please sign in first."}
)

// handlerFunc is a page handler: it writes a response or returns an error,
// which page turns into an error page.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// page adapts a handlerFunc to http.Handler, with the browser session
// loaded and form bodies bounded. It is the one place where errors become
// responses.
func (s *Server) page(h handlerFunc) http.Handler {
	return s.sessions.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
		}
		r, err := s.withUser(r)
		if err == nil {
			err = h(w, r)
		}
		if err != nil {
			s.fail(w, r, err)
		}
	}))
}

// fail writes the error page for err.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var se *statusError
	if !errors.As(err, &se) {
		s.log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		se = &statusError{status: http.StatusInternalServerError, message: "Something went wrong on our side. Please try again later."}
	}
	if se.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((se.retryAfter+time.Second-1)/time.Second)))
	}
	s.render(w, r, se.status, "error.html", http.StatusText(se.status), errorData{Status: se.status, Message: se.message})
}

type errorData struct {
	Status  int
	Message string
}

func (s *Server) notFound(w http.ResponseWriter, r *http.Request) error { return errNotFound }
