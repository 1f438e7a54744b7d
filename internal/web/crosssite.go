package web

import (
	"net/http"
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
func embeddedElsewhere(h http.Header) bool {
	switch h.Get("Sec-Fetch-Site") {
	case "cross-site", "same-site":
		return h.Get("Sec-Fetch-Mode") != "navigate" || h.Get("Sec-Fetch-Dest") != "document"
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
		"site", r.Header.Get("Sec-Fetch-Site"), "mode", r.Header.Get("Sec-Fetch-Mode"), "dest", r.Header.Get("Sec-Fetch-Dest"))
	return errEmbedded
}
