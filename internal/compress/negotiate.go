// Package compress holds the site's content codings: choosing one from a
// request's Accept-Encoding (RFC 9110, section 12.5.3), and the gzip and
// brotli encoders that the static files (compressed once, at start-up) and
// the pages (compressed per response) share.
package compress

import (
	"net/http"
	"strings"
)

// Content codings, as written in Accept-Encoding and Content-Encoding.
const (
	Identity = "identity"
	Gzip     = "gzip"
	Brotli   = "br"
)

// Accept is what a request's Accept-Encoding says about the codings this
// package knows. The zero value is a request without the header.
//
// Weights are kept in thousandths (q=0.5 is 500); -1 means "not listed".
type Accept struct {
	// present: the request carried the header (perhaps empty).
	present bool
	// gzip, br, identity and star are each entry's weight, -1 when the
	// header does not list it.
	gzip, br, identity, star int
}

// ParseAccept reads the Accept-Encoding fields of h. Anything it cannot
// parse is left out: an entry with a malformed weight counts as not
// listed, so a mangled header can make a coding unlisted but never
// accepted by mistake. It does not allocate, and its time is linear in the
// header's length.
func ParseAccept(h http.Header) Accept {
	a := Accept{gzip: -1, br: -1, identity: -1, star: -1}
	for _, v := range h.Values("Accept-Encoding") {
		a.present = true
		a.parse(v)
	}
	return a
}

// parse adds the entries of one field value.
func (a *Accept) parse(s string) {
	for len(s) > 0 {
		var entry string
		entry, s = nextElement(s)
		coding, params, _ := strings.Cut(entry, ";")
		coding = strings.TrimSpace(coding)
		q, ok := weight(params)
		if coding == "" || !ok {
			continue
		}
		var slot *int
		switch {
		case strings.EqualFold(coding, "gzip"), strings.EqualFold(coding, "x-gzip"):
			// RFC 9110 section 8.4.1.3: x-gzip is gzip.
			slot = &a.gzip
		case strings.EqualFold(coding, "br"):
			slot = &a.br
		case strings.EqualFold(coding, "identity"):
			slot = &a.identity
		case coding == "*":
			slot = &a.star
		default:
			continue
		}
		// A coding listed twice counts with its lower weight, so a
		// refusal (q=0) is never overridden by a later entry.
		if *slot < 0 || q < *slot {
			*slot = q
		}
	}
}

// nextElement splits off the first element of a comma-separated list,
// skipping commas inside quoted strings (a parameter's value may be one).
func nextElement(s string) (elem, rest string) {
	quoted := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case quoted && c == '\\':
			i++ // the escaped character, whatever it is
		case c == '"':
			quoted = !quoted
		case !quoted && c == ',':
			return s[:i], s[i+1:]
		}
	}
	return s, ""
}

// weight reads an entry's parameters (the text after the coding's first
// ";") and returns its q in thousandths: 1000 when there is no q, false
// when q is malformed. Other parameters are ignored, as the RFC defines
// none for Accept-Encoding.
func weight(params string) (int, bool) {
	q := 1000
	for params != "" {
		var p string
		p, params, _ = strings.Cut(params, ";")
		name, value, hasValue := strings.Cut(p, "=")
		if !strings.EqualFold(strings.TrimSpace(name), "q") {
			continue
		}
		if !hasValue {
			return 0, false
		}
		v, ok := qvalue(strings.TrimSpace(value))
		if !ok {
			return 0, false
		}
		q = v
	}
	return q, true
}

// qvalue parses RFC 9110's qvalue: "0" or "1", optionally followed by "."
// and up to three digits, never above 1.
func qvalue(s string) (int, bool) {
	if len(s) == 0 || len(s) > 5 || (s[0] != '0' && s[0] != '1') {
		return 0, false
	}
	v := int(s[0]-'0') * 1000
	if len(s) == 1 {
		return v, true
	}
	if s[1] != '.' {
		return 0, false
	}
	scale := 100
	for _, c := range []byte(s[2:]) {
		if c < '0' || c > '9' {
			return 0, false
		}
		v += int(c-'0') * scale
		scale /= 10
	}
	if v > 1000 {
		return 0, false
	}
	return v, true
}

// quality returns the weight coding has: its own entry's, else that of
// "*", else 0 (not acceptable); coding is one of the constants above.
func (a Accept) quality(coding string) int {
	q := -1
	switch coding {
	case Gzip:
		q = a.gzip
	case Brotli:
		q = a.br
	case Identity:
		q = a.identity
	}
	if q < 0 {
		q = a.star
	}
	return max(q, 0)
}

// Acceptable reports whether the request accepts coding in a response;
// coding is Gzip, Brotli or Identity. Identity is acceptable unless
// refused, by "identity;q=0" or by "*;q=0" without an entry of its own.
func (a Accept) Acceptable(coding string) bool {
	if coding == Identity {
		return a.identity != 0 && (a.identity > 0 || a.star != 0)
	}
	return a.present && a.quality(coding) > 0
}

// Choose returns the coding to answer with: among offers (Gzip or
// Brotli, in the server's order of preference; others are never chosen),
// the acceptable one with the highest weight, the earlier one on a tie; or
// Identity when the request accepts none of them, or weighs identity
// higher than all.
//
// A request without Accept-Encoding gets Identity: RFC 9110 would allow
// any coding, but clients that do not say they decode one often cannot.
// Identity unlisted ranks below any listed coding, so "gzip;q=0.5" means
// gzip. When the request refuses identity and accepts no offer, the
// answer is still Identity: a response it may reject is more use than an
// error (RFC 9110 lets the server choose).
func (a Accept) Choose(offers ...string) string {
	best, bestQ := Identity, 0
	if a.identity > 0 {
		bestQ = a.identity
	} else if a.identity < 0 && a.star > 0 {
		bestQ = a.star
	}
	// A coding beats identity at an equal weight: both are acceptable
	// and the coding is smaller.
	for _, c := range offers {
		if c != Gzip && c != Brotli {
			continue
		}
		if q := a.quality(c); a.present && q > 0 && (q > bestQ || (q == bestQ && best == Identity)) {
			best, bestQ = c, q
		}
	}
	return best
}
