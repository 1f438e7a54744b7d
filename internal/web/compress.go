package web

import (
	"bytes"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"channels/internal/compress"
)

// Pages are compressed per response when they are at least
// minCompressSize bytes long: below that, compressing saves a few hundred
// bytes at most, well inside one TCP segment.
//
// Pages are gzipped at the fastest level, and never brotli-compressed.
// Measured on the channel page (1.5 KiB; BenchmarkPageCompression, quiet
// machine): gzip level 1 takes about 40 µs for 51 % of the size, level 6
// about 100 µs for 49 %; brotli level 1 about 55 µs for 52 %, level 4
// about 150 µs for 45 %, level 11 4.5 ms and 690 KB of garbage for 37 %.
// Most of it is the compressor resetting its tables, whatever the page's
// size: brotli's best bargain would save some 80 bytes for 100 µs more,
// on a page that costs about 650 µs to serve (BenchmarkFirstVisit).
const (
	minCompressSize = 1024
	pageGzipLevel   = 1
)

// compressPages gzips HTML pages for GET and HEAD requests that accept
// gzip and carry no session cookie. Everything else passes through
// untouched: static files (compressed already, or not HTML), forms, and
// every response to a browser that has a session.
//
// Why only sessionless requests: BREACH. An attacker who sees response
// lengths on the network and can make the victim's browser ask again and
// again (top-level navigations carry the SameSite=Lax session cookie)
// learns a secret compressed beside text the attacker chooses, a
// character at a time, from which guesses compress better. Pages here
// hold such pairs: the channel page carries the browser's client password
// and TURN credentials (#channel-config) beside the channel's topic (its
// owner's text) and, for a browser not signed in, the "Sign in" link that
// echoes the request's whole query string; a signed-in user's pages show
// the user's name, /channels lists private channel links, and /signin
// echoes ?next=. (There is no CSRF token: CrossOriginProtection needs
// none.) Each of those secrets belongs to the session. A request without
// a session cookie gets nothing older than its response: no user, and a
// channel page whose client, password and TURN credentials were made for
// this response alone — the browser's next request carries the new
// cookie and is not compressed — so no two compressed responses share a
// secret to narrow down; what anyone gets by asking (public topics, the
// static TURN credentials of -ice-servers) is no secret. So the first
// visit, which also loads the scripts, is compressed; a returning browser
// has those cached and gets its 1.5 KiB page as it is. Masking the
// secrets per response would allow compressing every page but needs the
// browser client to unmask them; random padding only slows the attack.
//
// So a page must never show a request without a session anything secret
// that was not made for that response.
func (s *Server) compressPages(next http.Handler) http.Handler {
	pc := newPageCompressor()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			next.ServeHTTP(w, r)
			return
		}
		if _, err := r.Cookie(s.sessions.Cookie.Name); err == nil {
			next.ServeHTTP(w, r)
			return
		}
		pw := &pageWriter{w: w, pc: pc, coding: compress.ParseAccept(r.Header).Choose(compress.Gzip)}
		next.ServeHTTP(pw, r)
		// Not deferred: after a panic, nothing held is sent as if whole.
		pw.finish()
	})
}

// pageCompressor holds the encoder and buffers shared by all responses.
type pageCompressor struct {
	gzip    *compress.Encoder
	buffers sync.Pool
}

func newPageCompressor() *pageCompressor {
	gz, err := compress.NewEncoder(compress.Gzip, pageGzipLevel)
	if err != nil {
		panic(err) // the level is a constant, checked by the tests
	}
	return &pageCompressor{gzip: gz, buffers: sync.Pool{New: func() any { return new(bytes.Buffer) }}}
}

// pageWriter holds an HTML response until the handler is done, then sends
// it compressed or as it is. Anything else is passed straight through,
// decided when the status is written.
type pageWriter struct {
	w      http.ResponseWriter
	pc     *pageCompressor
	coding string // what the request prefers: compress.Gzip or Identity

	status int           // 0: not written yet
	held   *bytes.Buffer // the body, when it is being held
}

func (p *pageWriter) Header() http.Header { return p.w.Header() }

// Unwrap lets http.ResponseController reach the real writer.
func (p *pageWriter) Unwrap() http.ResponseWriter { return p.w }

func (p *pageWriter) WriteHeader(status int) {
	if p.status != 0 {
		return
	}
	if status < 200 {
		// Informational answers (103 Early Hints) go out as they come.
		p.w.WriteHeader(status)
		return
	}
	p.status = status
	h := p.w.Header()
	if status == http.StatusNoContent || status == http.StatusNotModified ||
		h.Get("Content-Encoding") != "" || h.Get("Content-Range") != "" ||
		!strings.HasPrefix(h.Get("Content-Type"), "text/html") {
		p.w.WriteHeader(status)
		return
	}
	// Whatever this body's length, another answer to this URL could be
	// compressed: caches must key on Accept-Encoding.
	h.Add("Vary", "Accept-Encoding")
	p.held = p.pc.buffers.Get().(*bytes.Buffer)
}

func (p *pageWriter) Write(b []byte) (int, error) {
	if p.status == 0 {
		p.WriteHeader(http.StatusOK)
	}
	if p.held == nil {
		return p.w.Write(b)
	}
	return p.held.Write(b)
}

// finish sends a held response.
func (p *pageWriter) finish() {
	if p.held == nil {
		return
	}
	body := p.held
	defer p.release(body)
	h := p.w.Header()
	if enc := p.pc.gzip; p.coding == compress.Gzip && body.Len() >= minCompressSize {
		out := p.pc.buffers.Get().(*bytes.Buffer)
		defer p.release(out)
		if err := enc.Encode(out, body.Bytes()); err == nil && out.Len() < body.Len() {
			h.Set("Content-Encoding", enc.Coding())
			h.Set("Content-Length", strconv.Itoa(out.Len()))
			if etag := h.Get("ETag"); etag != "" {
				// Another sequence of bytes, another tag.
				h.Set("ETag", strings.TrimSuffix(etag, `"`)+"-"+enc.Coding()+`"`)
			}
			p.w.WriteHeader(p.status)
			_, _ = p.w.Write(out.Bytes())
			return
		}
	}
	if h.Get("Content-Length") == "" {
		h.Set("Content-Length", strconv.Itoa(body.Len()))
	}
	p.w.WriteHeader(p.status)
	_, _ = p.w.Write(body.Bytes())
}

// release returns a buffer to the pool, unless a huge page grew it.
func (p *pageWriter) release(b *bytes.Buffer) {
	if b.Cap() > 1<<20 {
		return
	}
	b.Reset()
	p.pc.buffers.Put(b)
}
