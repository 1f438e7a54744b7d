package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"channels/internal/config"
	"channels/internal/metrics"
	"channels/internal/store"
	"channels/internal/turn"
)

// iceSource gives each client the STUN/TURN servers its calls use: the
// configured static list and, with a TURN secret, credentials for the
// TURN URLs that expire (turn.Minter) and name the client they were
// minted for.
type iceSource struct {
	static []config.ICEServer
	turn   *turn.Minter // nil: no time-limited credentials
	policy string       // RTCIceTransportPolicy: "all" or "relay"
	now    func() time.Time
	// renewals is each address's budget of GET /c/{id}/ice.
	renewals *limiter
}

// Budget of credential renewals per address. A page renews once in half
// its credentials' lifetime (a day by default), or when a call or
// reconnection finds them expired; the budget covers an office behind
// one address while bounding how many credentials anyone can collect
// beyond the one each channel page view already carries.
const (
	iceRenewBurst = 20
	iceRenewEvery = 30 * time.Second
)

// newICE sets up the ICE servers of cfg; now is the clock credentials are
// minted by.
func newICE(cfg config.Config, now func() time.Time) (*iceSource, error) {
	src := &iceSource{
		static:   cfg.ICEServers,
		policy:   "all",
		now:      now,
		renewals: newLimiter(iceRenewBurst, iceRenewEvery, maxTracked),
	}
	if src.static == nil {
		src.static = []config.ICEServer{}
	}
	if cfg.ICERelayOnly {
		src.policy = "relay"
	}
	if cfg.TURNSecret != "" {
		m, err := turn.New(turn.Options{Secret: cfg.TURNSecret, URLs: cfg.TURNURLs, TTL: cfg.TURNTTL, Now: now})
		if err != nil {
			return nil, err
		}
		src.turn = m
	}
	return src, nil
}

// forClient returns the servers for clientID and how long they last.
func (src *iceSource) forClient(clientID string) (iceAnswer, error) {
	if src.turn == nil {
		return iceAnswer{ICEServers: src.static}, nil
	}
	c, err := src.turn.Mint(clientID)
	if err != nil {
		return iceAnswer{}, fmt.Errorf("mint TURN credentials: %w", err)
	}
	out := make([]config.ICEServer, 0, len(src.static)+1)
	out = append(out, src.static...)
	out = append(out, config.ICEServer{URLs: c.URLs, Username: c.Username, Credential: c.Password})
	// Whole seconds left, rounded down: the page never counts on more.
	ttl := max(int64(c.Expires.Sub(src.now())/time.Second), 0)
	return iceAnswer{ICEServers: out, ICEExpires: c.Expires.Unix(), ICETTL: ttl}, nil
}

// iceURL is where a channel page renews its credentials, or "" when they
// never expire.
func (src *iceSource) iceURL(channelID string) string {
	if src.turn == nil {
		return ""
	}
	return "/c/" + channelID + "/ice"
}

// iceAnswer is the body of GET /c/{id}/ice: a client's servers and how
// long their credentials last, as the channel page also carries them.
type iceAnswer struct {
	ICEServers []config.ICEServer `json:"iceServers"`
	// ICEExpires is when the credentials expire, in Unix seconds (0:
	// never).
	ICEExpires int64 `json:"iceExpires"`
	// ICETTL is how many seconds of that are left as the server answers
	// (0 with ICEExpires 0). Pages count from it by their own clock, which
	// may be hours off the server's, so they need not compare the two.
	ICETTL int64 `json:"iceTtl"`
}

var errNoClient = &statusError{status: http.StatusForbidden, message: "This browser has no client in this channel. Reload the channel page."}

// channelICE renews the ICE servers of the browser's own client in the
// {id} channel: fresh time-limited TURN credentials, bound to its client
// id. It only serves a session that already holds a client there (the
// channel page made it); it never creates a session or a client, so it
// hands out nothing the page did not, nor anything to a client the page
// would now refuse (refuseMember), and each address may renew only
// iceRenewBurst times, then once per iceRenewEvery.
func (s *Server) channelICE(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	id := r.PathValue("id")
	if !store.ValidID(id) || s.ice.turn == nil {
		return errNotFound
	}
	// The session comes first: a request another site makes a visitor's
	// browser send carries no session (SameSite=Lax), so it is refused
	// here and cannot spend that visitor's budget of renewals.
	clientID := s.sessions.GetString(ctx, clientKeyPrefix+id)
	if clientID == "" {
		return errNoClient
	}
	addr := clientAddr(r)
	if ok, wait := s.ice.renewals.take(addr, s.now()); !ok {
		s.log.WarnContext(ctx, "TURN credential renewals rate limited", "client", addr, "channel", id)
		s.metrics.RateLimited(metrics.LimitTURNRenewals)
		return &statusError{status: http.StatusTooManyRequests, message: "Too many requests. Please wait a minute.", retryAfter: wait}
	}
	ch, c, err := s.store.ClientInChannel(ctx, clientID, id)
	if errors.Is(err, store.ErrNotFound) {
		return errNoClient // deleted with its channel, or swept
	} else if err != nil {
		return fmt.Errorf("look up client %s: %w", clientID, err)
	}
	// A client the channel page would refuse (removed, or kept out by
	// the lock) gets no relay either: the page's refusal, as its 403.
	if err := s.refuseMember(r, ch, c, s.manages(r)(ch)); err != nil {
		return err
	}
	answer, err := s.ice.forClient(clientID)
	if err != nil {
		return err
	}
	body, err := json.Marshal(answer)
	if err != nil {
		return fmt.Errorf("encode ICE servers: %w", err)
	}
	// Credentials: for this browser only, and only until they expire.
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Type", "application/json")
	w.Write(body)
	return nil
}
