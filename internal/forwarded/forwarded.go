// Package forwarded recovers the client address of requests that reach
// Channels through trusted reverse proxies, from X-Forwarded-For, so that
// per-address limits (sign-in, WebSocket connections) count browsers and
// not the proxy.
package forwarded

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Handler serves next with r.RemoteAddr replaced by the client address when
// the peer is one of the trusted proxies. The address is the rightmost
// entry of X-Forwarded-For that is not itself a trusted proxy: entries to
// its left were written by the client and prove nothing. With no trusted
// proxies, Handler returns next unchanged.
func Handler(trusted []netip.Prefix, next http.Handler) http.Handler {
	if len(trusted) == 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if addr, ok := ClientAddr(r.RemoteAddr, r.Header.Values("X-Forwarded-For"), trusted); ok {
			r2 := r.Clone(r.Context())
			r2.RemoteAddr = net.JoinHostPort(addr.String(), "0")
			r = r2
		}
		next.ServeHTTP(w, r)
	})
}

// ClientAddr returns the client address for a request from peer (a
// RemoteAddr) carrying the given X-Forwarded-For header values, and
// whether it differs from the peer: false when the peer is not trusted,
// the header is absent, or an entry is malformed before a client address
// is found.
func ClientAddr(peer string, xff []string, trusted []netip.Prefix) (netip.Addr, bool) {
	p, err := netip.ParseAddrPort(peer)
	if err != nil || !isTrusted(p.Addr().Unmap(), trusted) {
		return netip.Addr{}, false
	}
	// Several header lines form one list, in order.
	var entries []string
	for _, v := range xff {
		entries = append(entries, strings.Split(v, ",")...)
	}
	for i := len(entries) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(entries[i]))
		if err != nil {
			return netip.Addr{}, false
		}
		a = a.Unmap().WithZone("")
		if !isTrusted(a, trusted) {
			return a, true
		}
	}
	return netip.Addr{}, false
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// LimitKey is the key per-address limits count a request's sender by: its
// IP address from remoteAddr ("ip:port" or a bare address), or for IPv6
// its /64 (see LimitAddr). An unparsable remoteAddr is its own key.
func LimitKey(remoteAddr string) string {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	if a = LimitAddr(a); a.Is6() {
		return netip.PrefixFrom(a, 64).String()
	}
	return a.String()
}

// LimitAddr is the address per-address limits count a as: a itself, or
// for IPv6 the first address of its /64, since one host usually holds a
// whole /64 and could otherwise take a fresh address per request.
func LimitAddr(a netip.Addr) netip.Addr {
	a = a.Unmap().WithZone("")
	if a.Is6() {
		if p, err := a.Prefix(64); err == nil {
			return p.Addr()
		}
	}
	return a
}
