package web

import (
	"net/http"
	"strings"
)

// errEmbedded answers a channel page another site made a browser fetch
// other than as a page of its own.
var errEmbedded = &statusError{
	status:  http.StatusForbidden,
	message: "This channel opens only as a page of its own. Open its link directly.",
}

// embeddedElsewhere reports whether another site made the browser send
// r other than by opening it as the page of a tab or window: an image,
// a frame, a script, a prefetch, a fetch(). Browsers say so in their
// Fetch Metadata headers; a request without them (an older browser,
// curl) is taken as it is.
//
// A browser's cookies are not sent with such a request (SameSite=Lax),
// so a channel page would give it a new client, and any site could spend
// its visitors' budget of new clients — then the 429s, logged at WARN for
// fail2ban, would get those visitors banned. A link they follow, or a
// redirect, still loads the page (mode navigate, destination document).
// Same-site requests (another subdomain of the site) are held to the
// same rule: nothing of the site embeds channel pages either.
//
// A prefetch or prerender the browser makes on its own (speculation
// rules, <link rel=prefetch>, the address bar's preloading) is refused
// too, from any site: Chromium sends those as Sec-Fetch-Site none, mode
// navigate, destination document, exactly like a person's visit, and
// only Sec-Purpose (or the older Purpose) tells them apart. Nobody is
// looking at such a page yet; a browser that then shows it loads it
// again, for real.
func embeddedElsewhere(h http.Header) bool {
	if speculative(h) {
		return true
	}
	switch h.Get("Sec-Fetch-Site") {
	case "cross-site", "same-site":
		return h.Get("Sec-Fetch-Mode") != "navigate" || h.Get("Sec-Fetch-Dest") != "document"
	}
	return false
}

// speculative reports whether the browser sent r ahead of any person's
// visit: Sec-Purpose "prefetch" (with ";prerender" and other parameters),
// Purpose or X-Moz "prefetch", X-Purpose "preview" (Safari).
func speculative(h http.Header) bool {
	for _, k := range []string{"Sec-Purpose", "Purpose", "X-Moz", "X-Purpose"} {
		v := strings.ToLower(h.Get(k))
		if strings.HasPrefix(v, "prefetch") || strings.HasPrefix(v, "prerender") || strings.HasPrefix(v, "preview") {
			return true
		}
	}
	return false
}

// refuseEmbedded returns errEmbedded, logged at DEBUG only (the visitor
// did not choose to send it), for a request for channelID's page that
// another site embedded; nil otherwise.
func (s *Server) refuseEmbedded(r *http.Request, channelID string) error {
	if !embeddedElsewhere(r.Header) {
		return nil
	}
	s.log.DebugContext(r.Context(), "channel page embedded by another site refused", "client", clientAddr(r), "channel", channelID,
		"site", r.Header.Get("Sec-Fetch-Site"), "mode", r.Header.Get("Sec-Fetch-Mode"), "dest", r.Header.Get("Sec-Fetch-Dest"),
		"purpose", r.Header.Get("Sec-Purpose"))
	return errEmbedded
}
