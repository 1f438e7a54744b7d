package fsapi

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"unsafe"

	"channels/internal/forwarded"
	"channels/internal/metrics"
)

// Report actions: the form's action field of the Lua hooks' login and
// disconnect reports. These requests, and only these, may prove their
// origin with SecretField instead of basic credentials.
const (
	ActionClientLogin      = "verto_client_login"
	ActionClientDisconnect = "verto_client_disconnect"
)

// SecretField is the form field in which the Lua hooks' reports carry the
// configured password. FreeSWITCH's curl API (mod_curl) sends no basic
// credentials, not even from user:pass@ in the URL, so a report proves its
// origin with this field — and, like every request, by coming from an
// allowed network. The field is removed before handlers see the form.
const SecretField = "secret"

// DefaultMaxBody is the request body limit when Options.MaxBody is 0. A
// Verto directory lookup is about 1 KiB.
const DefaultMaxBody = 64 << 10

// Options configure the HTTP endpoint.
type Options struct {
	// User and Password are the HTTP basic credentials mod_xml_curl sends
	// (gateway-credentials). An empty Password refuses every request (401).
	User, Password string
	// Networks lists the client networks allowed to call; nil means
	// loopback only (127.0.0.0/8 and ::1). The address is the connection's
	// peer (Request.RemoteAddr); forwarding headers are not trusted.
	Networks []netip.Prefix
	// Hostname, when set, must equal a request's hostname field (the host
	// name of FreeSWITCH); other requests match no handler.
	Hostname string
	// Path is the path the endpoint answers at (default "/fsapi"); any
	// other path under the mount point gets the not-found document.
	Path string
	// MaxBody limits the request body in bytes (0: DefaultMaxBody).
	MaxBody int64
	// Logger receives refusals and handler errors (nil: discard).
	Logger *slog.Logger
	// Metrics counts requests by handler and outcome (nil: not counted).
	Metrics *metrics.FSAPI
}

type endpoint struct {
	reg      *Registry
	opts     Options
	credHash [sha256.Size]byte // of User and Password (credentialsHash)
	passHash [sha256.Size]byte
	logger   *slog.Logger
}

// NewHandler returns the /fsapi endpoint: POST only (405 otherwise), from
// the allowed networks (403), with the basic credentials (401 with
// WWW-Authenticate) — or, for report actions only, the password in
// SecretField — and an URL-encoded body within the size limit (413; 400
// when malformed). The answer is always HTTP 200, Content-Type text/xml and
// a whole XML document: the registry's answer at Options.Path, the
// not-found document at every other path below it.
//
// A request with an Authorization header is judged by it alone, before its
// body is read; one without is read first (so 400 and 413 come before 401
// there), so that a report's secret can be checked.
func NewHandler(reg *Registry, opts Options) http.Handler {
	if opts.Networks == nil {
		opts.Networks = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	}
	if opts.Path == "" {
		opts.Path = "/fsapi"
	}
	if opts.MaxBody <= 0 {
		opts.MaxBody = DefaultMaxBody
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &endpoint{
		reg:      reg,
		opts:     opts,
		credHash: credentialsHash([]byte(opts.User), []byte(opts.Password)),
		passHash: sha256.Sum256([]byte(opts.Password)),
		logger:   logger,
	}
}

func (e *endpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if r.Method != http.MethodPost {
		e.count(nil, metrics.FSAPIInvalid)
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if !e.allowedPeer(r.RemoteAddr) {
		e.logger.WarnContext(ctx, "fsapi: caller not in allowed networks", "client", forwarded.LimitKey(r.RemoteAddr))
		e.count(nil, metrics.FSAPIForbidden)
		http.Error(w, "forbidden", http.StatusForbidden)
		return
	}
	authed := false
	if r.Header.Get("Authorization") != "" {
		if !e.basicOK(r) {
			e.unauthorized(w, r)
			return
		}
		authed = true
	}
	form, fb, status := e.readForm(w, r)
	defer fb.release()
	if status != 0 {
		e.count(nil, metrics.FSAPIInvalid)
		http.Error(w, http.StatusText(status), status)
		return
	}
	secret, hasSecret := form[SecretField]
	delete(form, SecretField)
	if !authed {
		if !hasSecret || !isReport(form) || !e.secretOK(secret[0]) {
			e.unauthorized(w, r)
			return
		}
	}
	var body []byte
	code := http.StatusOK
	switch {
	case r.URL.Path != e.opts.Path:
		body = NotFound()
		e.count(nil, metrics.FSAPINotFound)
	case e.opts.Hostname != "" && form.Get("hostname") != e.opts.Hostname:
		e.logger.WarnContext(ctx, "fsapi: request from another FreeSWITCH host", "hostname", form.Get("hostname"))
		body = NotFound()
		e.count(nil, metrics.FSAPINotFound)
	default:
		var h Handler
		var res result
		ob := outBufs.Get().(*outBuf)
		defer ob.release(&body)
		body, h, res = e.reg.respondTo(ctx, ob.b[:0], form)
		e.count(h, res.outcome())
		if res == failed {
			// Not a "no": mod_xml_curl logs "Received HTTP error 503"
			// and answers from its other bindings or local files.
			code = http.StatusServiceUnavailable
		}
	}
	h := w.Header()
	h["Content-Type"] = textXML // canonical keys, shared values: no allocation
	h["Cache-Control"] = noStore
	w.WriteHeader(code)
	_, _ = w.Write(body)
}

// outBuf is the memory of an answer, which the endpoint's requests reuse:
// net/http copies what the handler writes before it returns.
type outBuf struct{ b []byte }

var outBufs = sync.Pool{New: func() any { return new(outBuf) }}

// maxPooledAnswer bounds the answers whose memory is kept for reuse.
const maxPooledAnswer = 16 << 10

// release keeps *out's memory (the answer written) for another request.
func (ob *outBuf) release(out *[]byte) {
	if cap(*out) > maxPooledAnswer {
		return
	}
	ob.b = (*out)[:0]
	outBufs.Put(ob)
}

// The values of every answer's headers, shared: net/http only reads them.
var (
	textXML = []string{"text/xml"}
	noStore = []string{"no-store"}
)

// readForm reads and parses the body; status is non-zero on failure.
// The form's memory (fb, nil on failure) is the endpoint's again once
// the caller calls fb.release: handlers use a form only until Process
// returns.
func (e *endpoint) readForm(w http.ResponseWriter, r *http.Request) (_ url.Values, fb *formBuf, _ int) {
	if ct := r.Header["Content-Type"]; len(ct) > 0 && ct[0] != "" && ct[0] != formType {
		mt, _, _ := strings.Cut(ct[0], ";")
		if !strings.EqualFold(strings.TrimSpace(mt), formType) {
			return nil, nil, http.StatusBadRequest
		}
	}
	body := r.Body
	if r.ContentLength < 0 || r.ContentLength > e.opts.MaxBody {
		// A length within the limit is enforced by net/http already
		// (the body ends there); only others need the limiting reader.
		body = http.MaxBytesReader(w, r.Body, e.opts.MaxBody)
	}
	raw, err := readBody(body, r.ContentLength, e.opts.MaxBody)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, nil, http.StatusRequestEntityTooLarge
		}
		return nil, nil, http.StatusBadRequest
	}
	// raw is this request's own: parse unescapes it in place, and the
	// form's values point into it, never written again.
	fb = formBufs.Get().(*formBuf)
	form, err := fb.parse(raw)
	if err != nil {
		return nil, fb, http.StatusBadRequest
	}
	return form, fb, 0
}

// formType is the media type of every request body.
const formType = "application/x-www-form-urlencoded"

// formBuf is the memory of a parsed form — the map, the values' backing
// array and the keys — which the endpoint's requests reuse: for a
// directory lookup, two dozen fields, it is most of what a request
// allocates.
type formBuf struct {
	form    url.Values
	backing []string
	keys    []string // the key of each value in backing
}

var formBufs = sync.Pool{New: func() any { return new(formBuf) }}

// maxPooledFields bounds the forms whose memory is kept for reuse.
const maxPooledFields = 256

// initialFields is the fields a form's memory is first made for.
const initialFields = 64

// maxFields is url.ParseQuery's limit on the number of fields (its
// default; GODEBUG urlmaxqueryparams is not consulted here).
const maxFields = 10000

// release empties fb and keeps it for another request; nil is ignored.
func (fb *formBuf) release() {
	if fb == nil {
		return
	}
	if len(fb.form) > maxPooledFields || cap(fb.backing) > maxPooledFields {
		return
	}
	clear(fb.form)
	clear(fb.backing[:cap(fb.backing)])
	clear(fb.keys[:cap(fb.keys)])
	fb.backing, fb.keys = fb.backing[:0], fb.keys[:0]
	formBufs.Put(fb)
}

// ParseForm parses an URL-encoded request body exactly as url.ParseQuery
// does — same values, same refusals (bad escapes, semicolons, more than
// 10000 fields) — with fewer allocations: the values of all keys share
// one backing array, and point into one copy of body.
func ParseForm(body []byte) (url.Values, error) {
	return new(formBuf).parse(bytes.Clone(body))
}

// readBody is io.ReadAll of body, in one allocation when the request
// said its length (within max, which body itself enforces): ReadAll
// starts at 512 bytes and grows, a lookup of about 1 KiB twice.
func readBody(body io.Reader, length, max int64) ([]byte, error) {
	if length <= 0 || length > max {
		return io.ReadAll(body)
	}
	b := make([]byte, 0, length+1) // one more: the end is seen without growing
	for {
		n, err := body.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if int64(len(b)) > length {
			// More than the request said: net/http never lets that
			// through, but whatever reads the body, it stays bounded.
			return nil, errLongerBody
		}
		if err != nil {
			if err == io.EOF {
				err = nil
			}
			return b, err
		}
	}
}

var (
	errSemicolon  = errors.New("fsapi: malformed form: semicolon separator")
	errFields     = errors.New("fsapi: malformed form: too many fields")
	errLongerBody = errors.New("fsapi: body longer than its Content-Length")
)

// parse is ParseForm of raw into fb's memory (allocated when fb has none,
// or too little). It unescapes raw in place — an escaped key or value is
// never longer than its escape, and each is written over its own bytes
// before any string points at them — and the form's strings point into
// raw, which the caller must not write afterwards.
func (fb *formBuf) parse(raw []byte) (url.Values, error) {
	if bytes.IndexByte(raw, ';') >= 0 {
		return nil, errSemicolon // url.ParseQuery refuses every field with one
	}
	n := bytes.Count(raw, amp) + 1
	if n > maxFields {
		return nil, errFields
	}
	// Sized for a directory lookup's two dozen fields at most: a hostile
	// body of thousands of '&' grows them only as fields really come.
	if fb.form == nil {
		fb.form = make(url.Values, min(n, initialFields))
	}
	if cap(fb.backing) < min(n, initialFields) {
		fb.backing = make([]string, 0, min(n, initialFields))
		fb.keys = make([]string, 0, min(n, initialFields))
	}
	form, backing, keys := fb.form, fb.backing[:0], fb.keys[:0]
	defer func() { fb.backing, fb.keys = backing, keys }()
	// The next escape ('%' or '+') at or after the field being read, so
	// that fields without one (most) are not searched for them again.
	esc := nextEscape(raw, 0)
	dup := false // a key was seen twice: new values are appended
	for pos := 0; pos < len(raw); {
		end := len(raw)
		if i := bytes.IndexByte(raw[pos:], '&'); i >= 0 {
			end = pos + i
		}
		kv := raw[pos:end]
		escaped := esc < end
		pos = end + 1
		if len(kv) == 0 {
			continue
		}
		var kb, vb []byte
		if i := bytes.IndexByte(kv, '='); i >= 0 {
			kb, vb = kv[:i], kv[i+1:]
		} else {
			kb = kv
		}
		var k, v string
		if escaped {
			var err error
			if k, err = unescapeInPlace(kb); err != nil {
				return nil, err
			}
			if v, err = unescapeInPlace(vb); err != nil {
				return nil, err
			}
			if end < len(raw) {
				esc = nextEscape(raw, end+1) // the field's own bytes changed: search after it
			}
		} else {
			k, v = unsafe.String(unsafe.SliceData(kb), len(kb)), unsafe.String(unsafe.SliceData(vb), len(vb))
		}
		if dup {
			if old, ok := form[k]; ok {
				form[k] = append(old, v) // capacity is capped: this copies
				continue
			}
		}
		backing, keys = append(backing, v), append(keys, k)
		i := len(backing)
		// One map operation for the usual new key: the length tells
		// whether it was new.
		before := len(form)
		form[k] = backing[i-1 : i : i]
		if len(form) == before && !dup {
			// The first repeated key: its earlier values were just
			// replaced. Rebuild the map from the pairs so far (once),
			// then look keys up before adding.
			dup = true
			clear(form)
			for j, key := range keys {
				if old, ok := form[key]; ok {
					form[key] = append(old, backing[j])
				} else {
					form[key] = backing[j : j+1 : j+1]
				}
			}
		}
	}
	return form, nil
}

// nextEscape is the index of the first '%' or '+' in raw at or after
// from; len(raw) when there is none.
func nextEscape(raw []byte, from int) int {
	n := len(raw)
	if i := bytes.IndexByte(raw[from:], '%'); i >= 0 {
		n = from + i
	}
	if i := bytes.IndexByte(raw[from:n], '+'); i >= 0 {
		n = from + i
	}
	return n
}

var amp = []byte{'&'}

// unescapeInPlace is url.QueryUnescape of b, written over b; the result
// points into b.
func unescapeInPlace(b []byte) (string, error) {
	if bytes.IndexByte(b, '%') < 0 && bytes.IndexByte(b, '+') < 0 {
		return unsafe.String(unsafe.SliceData(b), len(b)), nil
	}
	w := 0
	for r := 0; r < len(b); w++ {
		switch c := b[r]; c {
		case '%':
			if r+2 >= len(b) || !isHex(b[r+1]) || !isHex(b[r+2]) {
				esc := b[r:min(r+3, len(b))]
				return "", fmt.Errorf("fsapi: malformed form: %w", url.EscapeError(esc))
			}
			b[w] = unhex(b[r+1])<<4 | unhex(b[r+2])
			r += 3
		case '+':
			b[w] = ' '
			r++
		default:
			b[w] = c
			r++
		}
	}
	return unsafe.String(unsafe.SliceData(b), w), nil
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}

func isReport(form url.Values) bool {
	a := form.Get("action")
	return a == ActionClientLogin || a == ActionClientDisconnect
}

func (e *endpoint) allowedPeer(remote string) bool {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return false
	}
	addr := ap.Addr().Unmap()
	for _, p := range e.opts.Networks {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// basicOK compares the basic credentials in constant time (of a hash,
// so lengths do not leak either). It judges exactly as r.BasicAuth
// would parse, without its allocations.
func (e *endpoint) basicOK(r *http.Request) bool {
	if e.opts.Password == "" {
		return false
	}
	var dec [maxCredentials]byte
	auth := r.Header.Get("Authorization")
	const prefix = "Basic "
	if len(auth) < len(prefix) || !strings.EqualFold(auth[:len(prefix)], prefix) {
		return false
	}
	src := auth[len(prefix):]
	var cred []byte
	if base64.StdEncoding.DecodedLen(len(src)) <= len(dec) {
		n, err := base64.StdEncoding.Decode(dec[:], []byte(src))
		if err != nil {
			return false
		}
		cred = dec[:n]
	} else {
		user, pass, ok := r.BasicAuth() // long: allocates, as it always did
		if !ok {
			return false
		}
		cred = []byte(user + ":" + pass)
	}
	i := bytes.IndexByte(cred, ':')
	if i < 0 {
		return false
	}
	h := credentialsHash(cred[:i], cred[i+1:])
	return subtle.ConstantTimeCompare(h[:], e.credHash[:]) == 1
}

// maxCredentials is the decoded basic credentials basicOK reads without
// allocating.
const maxCredentials = 256

// credentialsHash hashes a user and password unambiguously: the user's
// length first.
func credentialsHash(user, pass []byte) [sha256.Size]byte {
	var buf [8 + maxCredentials]byte
	msg := binary.BigEndian.AppendUint64(buf[:0], uint64(len(user)))
	msg = append(append(msg, user...), pass...)
	return sha256.Sum256(msg)
}

func (e *endpoint) secretOK(secret string) bool {
	if e.opts.Password == "" {
		return false
	}
	s := sha256.Sum256([]byte(secret))
	return subtle.ConstantTimeCompare(s[:], e.passHash[:]) == 1
}

func (e *endpoint) unauthorized(w http.ResponseWriter, r *http.Request) {
	e.logger.WarnContext(r.Context(), "fsapi: bad or missing credentials", "client", forwarded.LimitKey(r.RemoteAddr))
	e.count(nil, metrics.FSAPIUnauthorized)
	w.Header().Set("WWW-Authenticate", `Basic realm="fsapi", charset="UTF-8"`)
	http.Error(w, "unauthorized", http.StatusUnauthorized)
}

// outcome is the metrics' name of a registry result.
func (r result) outcome() string {
	switch r {
	case answered:
		return metrics.FSAPIFound
	case notFound:
		return metrics.FSAPINotFound
	}
	return metrics.FSAPIError
}

// count counts a request for the metrics: the handler that matched (nil:
// none) and the outcome. The handler's label is its Go type, a fixed set.
func (e *endpoint) count(h Handler, outcome string) {
	if e.opts.Metrics == nil {
		return
	}
	name := metrics.FSAPINoHandler
	if h != nil {
		name = strings.TrimPrefix(reflect.TypeOf(h).String(), "*")
	}
	e.opts.Metrics.Request(name, outcome)
}
