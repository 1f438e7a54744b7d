package fsapi

import (
	"crypto/sha256"
	"crypto/subtle"
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
	userHash [sha256.Size]byte
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
		userHash: sha256.Sum256([]byte(opts.User)),
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
		body, h, res = e.reg.respond(ctx, form)
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
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, _ := strings.Cut(ct, ";")
		if !strings.EqualFold(strings.TrimSpace(mt), "application/x-www-form-urlencoded") {
			return nil, nil, http.StatusBadRequest
		}
	}
	raw, err := readBody(http.MaxBytesReader(w, r.Body, e.opts.MaxBody), r.ContentLength, e.opts.MaxBody)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, nil, http.StatusRequestEntityTooLarge
		}
		return nil, nil, http.StatusBadRequest
	}
	// raw is this request's own, never written again: the form's values
	// may point into it instead of into a copy.
	fb = formBufs.Get().(*formBuf)
	form, err := fb.parse(unsafe.String(unsafe.SliceData(raw), len(raw)))
	if err != nil {
		return nil, fb, http.StatusBadRequest
	}
	return form, fb, 0
}

// formBuf is the memory of a parsed form — the map and the values' backing
// array — which the endpoint's requests reuse: for a directory lookup, two
// dozen fields, it is most of what a request allocates.
type formBuf struct {
	form    url.Values
	backing []string
}

var formBufs = sync.Pool{New: func() any { return new(formBuf) }}

// maxPooledFields bounds the forms whose memory is kept for reuse.
const maxPooledFields = 256

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
	fb.backing = fb.backing[:0]
	formBufs.Put(fb)
}

// ParseForm parses an URL-encoded request body exactly as url.ParseQuery
// does — same values, same refusals (bad escapes, semicolons) — with fewer
// allocations: the values of all keys share one backing array.
func ParseForm(body []byte) (url.Values, error) { return new(formBuf).parse(string(body)) }

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
		if err != nil {
			if err == io.EOF {
				err = nil
			}
			return b, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
	}
}

// parse is ParseForm of s into fb's memory (allocated when fb has none,
// or too little).
func (fb *formBuf) parse(s string) (url.Values, error) {
	n := strings.Count(s, "&") + 1
	if fb.form == nil {
		fb.form = make(url.Values, n)
	}
	if cap(fb.backing) < n {
		fb.backing = make([]string, 0, n)
	}
	form, backing := fb.form, fb.backing[:0]
	defer func() { fb.backing = backing }()
	for s != "" {
		var kv string
		kv, s, _ = strings.Cut(s, "&")
		if strings.Contains(kv, ";") {
			return nil, errors.New("fsapi: malformed form: semicolon separator")
		}
		if kv == "" {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		k, err := url.QueryUnescape(k)
		if err != nil {
			return nil, fmt.Errorf("fsapi: malformed form: %w", err)
		}
		v, err = url.QueryUnescape(v)
		if err != nil {
			return nil, fmt.Errorf("fsapi: malformed form: %w", err)
		}
		if old, ok := form[k]; ok {
			form[k] = append(old, v) // capacity is capped: this copies
			continue
		}
		backing = append(backing, v)
		i := len(backing)
		form[k] = backing[i-1 : i : i]
	}
	return form, nil
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

// basicOK compares the basic credentials in constant time (of the hashes,
// so lengths do not leak either).
func (e *endpoint) basicOK(r *http.Request) bool {
	user, pass, ok := r.BasicAuth()
	if !ok || e.opts.Password == "" {
		return false
	}
	u := sha256.Sum256([]byte(user))
	p := sha256.Sum256([]byte(pass))
	return subtle.ConstantTimeCompare(u[:], e.userHash[:])&subtle.ConstantTimeCompare(p[:], e.passHash[:]) == 1
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
