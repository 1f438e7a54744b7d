package web

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/alexedwards/scs/v2"
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
// loaded and form bodies bounded. The response is buffered until the
// session is saved, so a failure to save it can still become an error page.
// It and fail are the one place where errors become responses.
func (s *Server) page(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("Vary", "Cookie")
		var token string
		if c, err := r.Cookie(s.sessions.Cookie.Name); err == nil {
			token = c.Value
		}
		ctx, err := s.sessions.Load(r.Context(), token)
		if err != nil && s.store.Ping(r.Context()) == nil {
			// The database answers, so the session's data is what is
			// broken: start afresh rather than fail on every visit.
			s.log.WarnContext(r.Context(), "unreadable session replaced", "err", err)
			ctx, err = s.sessions.Load(r.Context(), "")
		}
		if err != nil {
			s.fail(w, r, fmt.Errorf("load session: %w", err))
			return
		}
		saved := new(bool) // by the handler itself (commitSession)
		r = r.WithContext(context.WithValue(ctx, sessionSavedKey{}, saved))
		if r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
		}
		buf := &bufferedWriter{header: w.Header()}
		r, err = s.withUser(r)
		if err == nil {
			err = h(buf, r)
		}
		if err != nil {
			buf = &bufferedWriter{header: w.Header()}
			w.Header().Del("Location")
			s.fail(buf, r, err)
		}
		// Unless the handler saved the session itself, or failed to and
		// answered that (commitSession).
		if !*saved {
			if err := s.saveSession(w, r); err != nil {
				w.Header().Del("Location")
				s.fail(w, r, err)
				return
			}
		}
		if buf.status == 0 {
			buf.status = http.StatusOK
		}
		w.WriteHeader(buf.status)
		w.Write(buf.body.Bytes())
	})
}

// saveSession stores a changed session and sends its cookie, or expires
// the cookie of a destroyed one.
func (s *Server) saveSession(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	switch s.sessions.Status(ctx) {
	case scs.Modified:
		token, expiry, err := s.sessions.Commit(ctx)
		if err != nil {
			return fmt.Errorf("save session: %w", err)
		}
		s.sessions.WriteSessionCookie(ctx, w, token, expiry)
	case scs.Destroyed:
		s.sessions.WriteSessionCookie(ctx, w, "", time.Time{})
	default:
		return nil
	}
	// WriteSessionCookie adds its own Cache-Control; no-store, where a page
	// asked for it, covers it.
	if slices.Contains(w.Header().Values("Cache-Control"), "no-store") {
		w.Header().Set("Cache-Control", "no-store")
	}
	return nil
}

// sessionSavedKey is the context key of page's flag that the handler has
// saved the session itself (commitSession).
type sessionSavedKey struct{}

// commitSession saves the session now, within the handler, for a handler
// that must know it is saved before it says so (a sign-in is logged only
// once its session is stored). Page then does not try again, whether it
// was saved or not: the handler must not change the session afterwards,
// and answers a failure itself.
func (s *Server) commitSession(w http.ResponseWriter, r *http.Request) error {
	if saved, ok := r.Context().Value(sessionSavedKey{}).(*bool); ok {
		*saved = true
	}
	return s.saveSession(w, r)
}

// bufferedWriter holds a response until the session is saved. Headers go
// straight to the real writer's map.
type bufferedWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedWriter) Header() http.Header { return b.header }

func (b *bufferedWriter) WriteHeader(status int) {
	if b.status == 0 {
		b.status = status
	}
}

func (b *bufferedWriter) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.body.Write(p)
}

// fail writes the error page for err.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var se *statusError
	if !errors.As(err, &se) && r.Context().Err() != nil {
		// The browser went away mid-request; nobody is left to tell.
		s.log.DebugContext(r.Context(), "request abandoned", "method", r.Method, "path", r.URL.Path, "err", err)
		return
	}
	if se == nil {
		s.log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		se = &statusError{status: http.StatusInternalServerError, message: "Something went wrong on our side. Please try again later."}
	}
	if se.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((se.retryAfter+time.Second-1)/time.Second)))
	}
	data := errorData{Status: se.status, Message: se.message}
	if se == errSignInNeeded {
		data.SignIn = signInURL(r)
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			// A page that needs a user: straight to the form, which
			// comes back here. A form sent without one gets the error
			// page and a link instead, so nothing is resent by surprise.
			http.Redirect(w, r, data.SignIn, http.StatusSeeOther)
			return
		}
	}
	s.render(w, r, se.status, "error.html", http.StatusText(se.status), data)
}

type errorData struct {
	Status  int
	Message string
	// SignIn is the sign-in form's URL, with the way back, on 401 pages.
	SignIn string
}

func (s *Server) notFound(w http.ResponseWriter, r *http.Request) error { return errNotFound }
