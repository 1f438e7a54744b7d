// Package fsapi is the gateway FreeSWITCH calls: mod_xml_curl fetches
// directory entries and module configuration from it, and the Lua hooks of
// the configuration pack report Verto logins and disconnects to it.
//
// A request is a set of URL-encoded key/value pairs. An ordered Registry of
// Handlers answers it: the first handler whose required pairs are all
// present processes the request and returns a Document (a template and its
// data), rendered as a whole FreeSWITCH XML document. No match, a handler's
// ErrNotFound, or any other error gives FreeSWITCH's not-found document,
// which is how FreeSWITCH is told "no" (it then falls back to its local
// files); over HTTP, any other error (a failure, not a "no": the database
// down) is sent with status 503, and RespondErr tells it apart in-process. Feature packages (directory, vertoconf) offer a Register function;
// the app calls them in one visible list, and that list is the order.
//
// NewHandler puts a Registry on HTTP, guarded by basic credentials and a
// network allowlist; the embedded Verto hub calls Respond in-process.
package fsapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"text/template"
)

// ErrNotFound is what a Handler returns when it has no answer for a
// request (an unknown user, say). The response is the not-found document.
var ErrNotFound = errors.New("fsapi: not found")

// Pair is one key/value pair a Handler requires in a request.
type Pair struct{ Key, Value string }

// Document is a handler's answer: a template made with ParseTemplate (so
// that every value it prints is XML-escaped) and the data to execute it
// with. The template writes the <document> element; the XML declaration is
// added in front of it.
type Document struct {
	Template *template.Template
	Data     any
	// Body, when not nil, is the document already rendered (what
	// Template would write, without the declaration), and Template and
	// Data are not used: a handler that gives the same answer many times
	// (a client's directory entry) may keep it rendered. The registry
	// only reads it.
	Body []byte
}

// Handler answers one kind of request.
type Handler interface {
	// Requires returns the key/value pairs that must all be present (as
	// the first value of their key) for the handler to answer. It is
	// called once, when the handler is added.
	Requires() []Pair
	// Process answers a matching request. ErrNotFound, or any other error,
	// makes the response the not-found document; other errors are logged.
	// The form is the caller's again once Process returns (the endpoint
	// reuses its memory): Process may keep its strings, not the map.
	Process(ctx context.Context, form url.Values) (Document, error)
}

type entry struct {
	h     Handler
	pairs []Pair
}

// Registry is an ordered list of handlers; the first whose required pairs
// all match answers. Add handlers while assembling the app, before the
// registry serves requests; after that it is safe for concurrent use.
type Registry struct {
	entries []entry
	logger  *slog.Logger
	plans   plans   // the templates rendered without text/template (render.go)
	batch   Batcher // see SetBatcher (batch.go); nil: none
}

// NewRegistry returns an empty registry that logs handler errors to logger
// (nil: discard).
func NewRegistry(logger *slog.Logger) *Registry {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Registry{logger: logger}
}

// Add appends a handler: it is tried after every handler added before it.
func (r *Registry) Add(h Handler) {
	pairs := append([]Pair(nil), h.Requires()...)
	r.entries = append(r.entries, entry{h: h, pairs: pairs})
}

// Match returns the first handler whose required pairs are all present in
// form, or nil.
func (r *Registry) Match(form url.Values) Handler {
	for _, e := range r.entries {
		if matches(form, e.pairs) {
			return e.h
		}
	}
	return nil
}

func matches(form url.Values, pairs []Pair) bool {
	for _, p := range pairs {
		vs := form[p.Key]
		if len(vs) == 0 || vs[0] != p.Value {
			return false
		}
	}
	return true
}

// Respond answers a request: always a whole XML document, as /fsapi's
// response body. No matching handler, ErrNotFound, any other error (logged)
// and even a panicking handler (logged) give the not-found document.
func (r *Registry) Respond(ctx context.Context, form url.Values) []byte {
	out, _, _ := r.respond(ctx, form)
	return out
}

// ErrFailed is RespondErr's error when the handler failed rather than
// answered: an error other than ErrNotFound (its database unreachable,
// say; logged), a panic, a template that failed. It is not a "no": asked
// again later, the same request may be answered.
var ErrFailed = errors.New("fsapi: handler failed")

// RespondErr is Respond that also tells a failure (ErrFailed) from an
// answer: the document is then the not-found one, as /fsapi sends it with
// status 503. The embedded hub uses it to answer a login it could not
// check with "try again" rather than "Login Incorrect".
func (r *Registry) RespondErr(ctx context.Context, form url.Values) ([]byte, error) {
	out, _, res := r.respond(ctx, form)
	if res == failed {
		return out, ErrFailed
	}
	return out, nil
}

// result is how a handler's answer came about, for the endpoint's metrics.
type result uint8

const (
	answered result = iota
	notFound        // no handler matched, or it returned ErrNotFound
	failed          // any other error, a panic, a bad template
)

// Render renders doc as Respond would, without the declaration: for a
// handler that keeps an answer rendered (Document.Body). The answer is
// clipped, and never nil: a caller may keep it and share it (an append
// to it must copy), and a nil Body means "not rendered".
func (r *Registry) Render(doc Document) ([]byte, error) {
	out, err := r.renderTo(nil, "", doc)
	if err != nil {
		return nil, fmt.Errorf("fsapi: render: %w", err)
	}
	return slices.Clip(append([]byte{}, out...)), nil
}

// errNoTemplate is renderTo's error for a document with neither a body
// nor a template.
var errNoTemplate = errors.New("no template")

// renderTo appends decl and doc, rendered, to dst (which may then be the
// answer's memory, as with append): its Body as it is, else its template,
// without text/template where a plan can (render.go).
func (r *Registry) renderTo(dst []byte, decl string, doc Document) ([]byte, error) {
	if doc.Body != nil {
		if dst == nil {
			dst = make([]byte, 0, len(decl)+len(doc.Body))
		}
		return append(append(dst, decl...), doc.Body...), nil
	}
	if doc.Template == nil {
		return nil, errNoTemplate
	}
	if out, ok := r.plans.render(dst, decl, doc); ok {
		return out, nil
	}
	buf := bytes.NewBuffer(dst)
	buf.Grow(1024)
	buf.WriteString(decl)
	if err := doc.Template.Execute(buf, doc.Data); err != nil {
		return nil, fmt.Errorf("template %s: %w", doc.Template.Name(), err)
	}
	return buf.Bytes(), nil
}

// respond is Respond, also telling which handler matched (nil: none) and
// how it answered.
func (r *Registry) respond(ctx context.Context, form url.Values) (out []byte, h Handler, res result) {
	return r.respondTo(ctx, nil, form)
}

// respondTo is respond appending a handler's answer to dst (which may
// then be out's memory, as with append); other answers are fresh copies.
func (r *Registry) respondTo(ctx context.Context, dst []byte, form url.Values) (out []byte, h Handler, res result) {
	h = r.Match(form)
	if h == nil {
		return NotFound(), nil, notFound
	}
	defer func() {
		if v := recover(); v != nil {
			r.logger.ErrorContext(ctx, "fsapi handler panicked", "handler", fmt.Sprintf("%T", h), "panic", v)
			out, res = NotFound(), failed
		}
	}()
	doc, err := h.Process(ctx, form)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			r.logger.DebugContext(ctx, "fsapi: not found", "handler", fmt.Sprintf("%T", h), "err", err)
			return NotFound(), h, notFound
		}
		if ctx.Err() != nil {
			// The caller went away (FreeSWITCH gave up, a client closed the
			// connection): nobody reads the answer, and nothing failed here.
			r.logger.DebugContext(ctx, "fsapi: request ended before its answer", "handler", fmt.Sprintf("%T", h), "err", err)
			return NotFound(), h, failed
		}
		r.logger.ErrorContext(ctx, "fsapi handler failed", "handler", fmt.Sprintf("%T", h), "err", err)
		return NotFound(), h, failed
	}
	out, err = r.renderTo(dst, Declaration, doc)
	if errors.Is(err, errNoTemplate) {
		r.logger.ErrorContext(ctx, "fsapi handler returned no template", "handler", fmt.Sprintf("%T", h))
		return NotFound(), h, failed
	}
	if err != nil {
		r.logger.ErrorContext(ctx, "fsapi template failed", "handler", fmt.Sprintf("%T", h),
			"template", doc.Template.Name(), "err", err)
		return NotFound(), h, failed
	}
	return out, h, answered
}
