package web

import (
	"net/http"
	"net/url"
	"strings"
)

// maxNextLen bounds the return path carried through sign-in: far above any
// real page of the site, far below what could bloat a form or a header.
const maxNextLen = 1024

// localPath returns next when it is a path on this site that is safe to
// send the browser to after signing in, and "/" otherwise. The return path
// comes from a query string anyone can write into a link, so it must never
// lead to another site (an open redirect, useful for phishing: "sign in on
// the real site, land on the fake one").
//
// Browsers resolve Location leniently: "//host" and "/\host" are
// scheme-relative URLs to another host, and tabs and newlines are dropped
// from URLs (so "/\t/host" becomes "//host"). Hence the rules: one leading
// "/" not followed by "/" or "\", no backslash or control character
// anywhere, and the same again on the percent-decoded path, in case
// something on the way (a proxy, the mux's path cleaning) decodes it once.
func localPath(next string) string {
	if len(next) == 0 || len(next) > maxNextLen || next[0] != '/' || !plainPath(next) {
		return "/"
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" ||
		!strings.HasPrefix(u.Path, "/") || !plainPath(u.Path) {
		return "/"
	}
	if u.Path == "/signin" {
		// Back to the form just filled in: go home instead.
		return "/"
	}
	return next
}

// plainPath reports whether p, a string starting with "/", has no second
// leading "/" or "\", and nothing but printable ASCII other than the
// backslash: request paths arrive percent-encoded, so a real page never
// needs more.
func plainPath(p string) bool {
	if len(p) > 1 && (p[1] == '/' || p[1] == '\\') {
		return false
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c <= ' ' || c >= 0x7f || c == '\\' {
			return false
		}
	}
	return true
}

// signInURL is the sign-in form that returns to the page r asked for.
func signInURL(r *http.Request) string {
	next := localPath(r.URL.RequestURI())
	if next == "/" {
		return "/signin"
	}
	return "/signin?" + url.Values{"next": {next}}.Encode()
}

// returnPath is the path a page's "Sign in" link should bring the browser
// back to, or "" when there is none worth carrying: only pages a GET can
// show again.
func returnPath(r *http.Request) string {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return ""
	}
	if next := localPath(r.URL.RequestURI()); next != "/" {
		return next
	}
	return ""
}
