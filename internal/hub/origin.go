package hub

import (
	"net/http"
	"net/url"
	"path"
	"strings"
)

// originPolicy decides which browser origins may open a WebSocket. Upgrades
// are not covered by the web app's cross-origin protection, so the hub
// checks the Origin header itself.
type originPolicy struct {
	origins []string // "scheme://host[:port]", lower case
	hosts   []string // host patterns for path.Match, lower case
}

func newOriginPolicy(list []string) originPolicy {
	var p originPolicy
	for _, o := range list {
		o = strings.ToLower(strings.TrimSpace(o))
		if o == "" {
			continue
		}
		if strings.Contains(o, "://") {
			p.origins = append(p.origins, strings.TrimRight(o, "/"))
		} else {
			p.hosts = append(p.hosts, o)
		}
	}
	return p
}

// allowed reports whether r may be upgraded: no Origin header (not a
// browser), an origin on the same host as the request, or one listed.
func (p originPolicy) allowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	host := strings.ToLower(u.Host)
	if host == strings.ToLower(r.Host) {
		return true
	}
	full := strings.ToLower(u.Scheme) + "://" + host
	for _, o := range p.origins {
		if o == full {
			return true
		}
	}
	for _, pat := range p.hosts {
		if ok, _ := path.Match(pat, host); ok {
			return true
		}
		if ok, _ := path.Match(pat, u.Hostname()); ok {
			return true
		}
	}
	return false
}
