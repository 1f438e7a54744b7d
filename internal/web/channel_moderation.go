package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"channels/internal/metrics"
	"channels/internal/store"
)

// Moderation: a channel's managers (its owner and administrators, see
// canManage) remove people from it for a while and lock it. The records
// and the lock's admission rule live in the store (moderation.go); this
// file holds the endpoints the managers' pages post to, the state every
// member's page reads, and the refusals of the channel page.
//
// Everything a manager can cause is bounded by the store: at most
// store.MaxActiveRemovals active removals per channel, each at most a
// week long, swept when over.

// removalMinutes are the durations a removal may last, in minutes: 15
// minutes, an hour (the default), a day, a week.
var removalMinutes = map[int]bool{15: true, 60: true, 1440: true, 10080: true}

// defaultRemovalMinutes is the removal's length when the form leaves it
// out.
const defaultRemovalMinutes = 60

// Budget of GET /c/{id}/moderation per client: pages fetch it when a
// manager's page hints at a change (at most once per 3 s) and when their
// login fails; ten at once, then one every two seconds, is more than any
// page needs and bounds what a modified one can cost.
const (
	modReadBurst = 10
	modReadEvery = 2 * time.Second
)

// Errors of the moderation endpoints, answered as JSON.
var (
	errNotManager = &statusError{status: http.StatusForbidden, message: "Only the channel's owner and administrators may do this."}
	errNoMember   = &statusError{status: http.StatusForbidden, message: "This browser has no client in this channel. Open the channel page first."}
	errNoSuchPeer = &statusError{status: http.StatusNotFound, message: "There is no such person in this channel."}
)

// api adapts a moderation endpoint: its errors become JSON answers
// {"error": "…"} with their status, never an HTML page. An error that is
// not the request's fault is logged and answered 500 without details.
func (s *Server) api(h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("Cache-Control", "no-store")
		err := h(w, r)
		if err == nil {
			return nil
		}
		var se *statusError
		if !errors.As(err, &se) {
			if r.Context().Err() != nil {
				return err // nobody is left to answer; page logs it at DEBUG
			}
			s.log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "err", err)
			se = &statusError{status: http.StatusInternalServerError, message: "Something went wrong on our side. Please try again later."}
		}
		if se.retryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int((se.retryAfter+time.Second-1)/time.Second)))
		}
		writeJSON(w, se.status, map[string]string{"error": se.message})
		return nil
	}
}

// moderationAction reports whether path is one of the moderation
// endpoints a manager's page posts to.
func moderationAction(path string) bool {
	rest, ok := strings.CutPrefix(path, "/c/")
	if !ok {
		return false
	}
	_, action, _ := strings.Cut(rest, "/")
	return action == "remove" || action == "unremove" || action == "lock"
}

// writeJSON writes v, which always encodes, as a JSON answer.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(body)
}

// moderatedChannel loads the {id} channel for a signed-in user who may
// moderate it; anyone else is a 403 (not a sign-in redirect: these are
// fetches of a page, not pages).
func (s *Server) moderatedChannel(r *http.Request) (store.Channel, store.User, error) {
	u, ok := s.currentUser(r)
	if !ok {
		return store.Channel{}, store.User{}, errNotManager
	}
	ch, err := s.channel(r)
	if err != nil {
		return store.Channel{}, store.User{}, err
	}
	if !canManage(u, ch) {
		return store.Channel{}, store.User{}, errNotManager
	}
	return ch, u, nil
}

// formClient reads the form's client field: a well-formed client id.
func formClient(r *http.Request) (string, error) {
	form, err := readForm(r)
	if err != nil {
		return "", err
	}
	id, err := field(form, "client")
	if err != nil {
		return "", err
	}
	if !store.ValidID(id) {
		return "", errorf(http.StatusBadRequest, "The form field \"client\" must be a client id.")
	}
	return id, nil
}

// moderatedClient is moderatedChannel and the form's client, for the
// requests that act on one member.
func (s *Server) moderatedClient(r *http.Request) (store.Channel, store.User, string, error) {
	ch, u, err := s.moderatedChannel(r)
	if err != nil {
		return store.Channel{}, store.User{}, "", err
	}
	id, err := formClient(r)
	return ch, u, id, err
}

// channelRemove removes a client from the {id} channel for the minutes
// the form says (POST /c/{id}/remove, client=…&minutes=…), then has the
// hub close its connections (Options.Kick).
func (s *Server) channelRemove(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	ch, u, clientID, err := s.moderatedClient(r)
	if err != nil {
		return err
	}
	minutes := defaultRemovalMinutes
	if v, err := field(r.PostForm, "minutes"); err != nil {
		return err
	} else if v != "" {
		if minutes, err = strconv.Atoi(v); err != nil || !removalMinutes[minutes] {
			return errorf(http.StatusBadRequest, "The form field \"minutes\" must be 15, 60, 1440 or 10080.")
		}
	}
	if clientID == s.sessions.GetString(ctx, clientKeyPrefix+ch.ID) {
		return errorf(http.StatusBadRequest, "You cannot remove yourself.")
	}
	rm, err := s.store.Remove(ctx, ch.ID, clientID, u.ID, s.now().Add(time.Duration(minutes)*time.Minute))
	switch {
	case errors.Is(err, store.ErrNotFound):
		return errNoSuchPeer
	case errors.Is(err, store.ErrTooManyRemovals):
		return errorf(http.StatusConflict, "This channel already keeps %d people out: unremove some, or wait for their removals to end.", store.MaxActiveRemovals)
	case err != nil:
		return err
	}
	s.log.InfoContext(ctx, "channel member removed", "user", u.Name, "user_id", u.ID, "channel", ch.ID, "client", clientID,
		"minutes", minutes, "until", rm.Until)
	s.metrics.Moderation().Action(metrics.ModRemove)
	if s.kick != nil {
		// The removal is committed; the hook closes what is open, and
		// must not be cut short by this request's end.
		s.kick(context.WithoutCancel(ctx), clientID)
	}
	writeJSON(w, http.StatusOK, struct {
		Removed string `json:"removed"`
		Until   int64  `json:"until"`
	}{clientID, rm.Until.Unix()})
	return nil
}

// channelUnremove ends a removal early (POST /c/{id}/unremove, client=…).
func (s *Server) channelUnremove(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	ch, u, clientID, err := s.moderatedClient(r)
	if err != nil {
		return err
	}
	if err := s.store.Unremove(ctx, ch.ID, clientID); errors.Is(err, store.ErrNotFound) {
		return errorf(http.StatusNotFound, "Nobody with that client was removed from this channel.")
	} else if err != nil {
		return err
	}
	s.log.InfoContext(ctx, "channel member unremoved", "user", u.Name, "user_id", u.ID, "channel", ch.ID, "client", clientID)
	s.metrics.Moderation().Action(metrics.ModUnremove)
	s.unkickClient(ctx, clientID)
	writeJSON(w, http.StatusOK, struct {
		Unremoved string `json:"unremoved"`
	}{clientID})
	return nil
}

// unkickClient lets clientID, whose removal has just ended (committed),
// log in again at once (Options.Unkick).
func (s *Server) unkickClient(ctx context.Context, clientID string) {
	if s.unkick != nil {
		// Not cut short by the request's end, as the kick is not.
		s.unkick(context.WithoutCancel(ctx), clientID)
	}
}

// channelLock locks (locked=1) or unlocks (locked=0) the {id} channel.
// Locking admits the clients present (store.Lock) and the manager's own.
func (s *Server) channelLock(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	ch, u, err := s.moderatedChannel(r)
	if err != nil {
		return err
	}
	form, err := readForm(r)
	if err != nil {
		return err
	}
	v, err := field(form, "locked")
	if err != nil {
		return err
	}
	switch v {
	case "1":
		own := s.sessions.GetString(ctx, clientKeyPrefix+ch.ID)
		at, err := s.store.Lock(ctx, ch.ID, s.now(), own)
		if errors.Is(err, store.ErrNotFound) {
			return errNotFound
		} else if err != nil {
			return err
		}
		s.log.InfoContext(ctx, "channel locked", "user", u.Name, "user_id", u.ID, "channel", ch.ID, "client", own, "since", at)
		s.metrics.Moderation().Action(metrics.ModLock)
	case "0":
		if err := s.store.Unlock(ctx, ch.ID); errors.Is(err, store.ErrNotFound) {
			return errNotFound
		} else if err != nil {
			return err
		}
		s.log.InfoContext(ctx, "channel unlocked", "user", u.Name, "user_id", u.ID, "channel", ch.ID)
		s.metrics.Moderation().Action(metrics.ModUnlock)
	default:
		return errorf(http.StatusBadRequest, "The form field \"locked\" must be 1 or 0.")
	}
	writeJSON(w, http.StatusOK, struct {
		Locked bool `json:"locked"`
	}{v == "1"})
	return nil
}

// moderationAnswer is the body of GET /c/{id}/moderation.
type moderationAnswer struct {
	Locked  bool     `json:"locked"`
	Removed []string `json:"removed"`
	// You is what moderation says of the asking browser's client: "",
	// "removed", or "locked" (not admitted to the lock).
	You string `json:"you"`
}

// channelModeration answers the {id} channel's moderation state to a
// browser whose session holds a client there (removed or not), within its
// client's budget. The state is read from the database, past this
// process's caches (store.FreshModeration): a page reads it once per
// change it hears of, maybe from another process a moment ago, and
// never again until the next. That costs one or two queries per request,
// and one more while the channel is locked (the client's admission),
// bounded by the budget.
func (s *Server) channelModeration(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	id := r.PathValue("id")
	if !store.ValidID(id) {
		return errNotFound
	}
	// The session first: a request another site makes a browser send
	// carries none (SameSite=Lax), so it cannot spend the budget.
	clientID := s.sessions.GetString(ctx, clientKeyPrefix+id)
	if clientID == "" {
		return errNoMember
	}
	if ok, wait := s.modReads.take(clientID, s.now()); !ok {
		s.log.WarnContext(ctx, "moderation reads rate limited", "client", clientAddr(r), "channel", id, "member", clientID)
		s.metrics.RateLimited(metrics.LimitModerationReads)
		return &statusError{status: http.StatusTooManyRequests, message: "Too many requests. Please wait a moment.", retryAfter: wait}
	}
	mod, err := s.store.FreshModeration(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return errNotFound
	} else if err != nil {
		return err
	}
	answer := moderationAnswer{Locked: !mod.Locked.IsZero(), Removed: mod.RemovedIDs()}
	if _, removed := mod.Removal(clientID); removed {
		answer.You = store.RefusedRemoved
	} else if answer.Locked && !s.managesChannel(r, id) {
		_, c, err := s.store.ClientInChannel(ctx, clientID, id)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("look up client %s: %w", clientID, err)
		}
		if mod.Refusal(c) != "" { // a client gone is not admitted either
			answer.You = store.RefusedLocked
		}
	}
	writeJSON(w, http.StatusOK, answer)
	return nil
}

// manages returns whether the request's signed-in user, if any, may
// moderate a channel.
func (s *Server) manages(r *http.Request) func(store.Channel) bool {
	u, signedIn := s.currentUser(r)
	return func(ch store.Channel) bool { return signedIn && canManage(u, ch) }
}

// managesChannel reports whether the signed-in user may moderate channel
// id; it reads the channel only for a signed-in user who is no
// administrator.
func (s *Server) managesChannel(r *http.Request, id string) bool {
	u, ok := s.currentUser(r)
	if !ok {
		return false
	}
	if u.Admin {
		return true
	}
	ch, err := s.store.ChannelByID(r.Context(), id)
	return err == nil && canManage(u, ch)
}

// The channel page's refusals.
var errLocked = &statusError{status: http.StatusForbidden, message: "This channel is locked: nobody new can join. Ask its owner to unlock it."}

// errRemoved is the channel page's answer to a removed client, or to a
// newcomer from the address of one.
func errRemoved(until time.Time) error {
	return &statusError{status: http.StatusForbidden,
		message: "You were removed from this channel until " + until.UTC().Format("15:04 MST on 2 January 2006") + "."}
}

// refuseMember returns the channel page's 403 when moderation keeps the
// session's client c out of ch: removed, or not admitted to its lock.
// Managers are never refused (their page view lifts their own removal
// and admits them, see admitManager). A refusal is logged and counted.
func (s *Server) refuseMember(r *http.Request, ch store.Channel, c store.Client, manager bool) error {
	if manager {
		return nil
	}
	mod, err := s.store.ModerationOf(r.Context(), ch)
	if err != nil {
		return pageModerationError(ch.ID, err)
	}
	switch mod.Refusal(c) {
	case store.RefusedRemoved:
		rm, _ := mod.Removal(c.ID)
		s.log.WarnContext(r.Context(), "channel page refused: removed", "client", clientAddr(r), "channel", ch.ID,
			"member", c.ID, "until", rm.Until)
		s.metrics.Moderation().Refused(metrics.RefusedPage, metrics.RefusedRemoved)
		return errRemoved(rm.Until)
	case store.RefusedLocked:
		s.log.InfoContext(r.Context(), "channel page refused: locked", "client", clientAddr(r), "channel", ch.ID, "member", c.ID)
		s.metrics.Moderation().Refused(metrics.RefusedPage, metrics.RefusedLocked)
		return errLocked
	}
	return nil
}

// refuseNewcomer returns the channel page's 403 for a browser without a
// client in ch while ch is locked, or while a client created from the
// browser's address (IPv4 address, IPv6 /64) is removed from it. It runs
// before the new client is paid for, so a refusal costs the address's
// budget nothing. Managers are never refused.
func (s *Server) refuseNewcomer(r *http.Request, ch store.Channel, manager bool) error {
	if manager {
		return nil
	}
	mod, err := s.store.ModerationOf(r.Context(), ch)
	if err != nil {
		return pageModerationError(ch.ID, err)
	}
	addr := clientAddr(r)
	if rm, ok := mod.RemovalFrom(addr); ok {
		s.log.WarnContext(r.Context(), "channel page refused: removed", "client", addr, "channel", ch.ID,
			"origin_of", rm.ClientID, "until", rm.Until)
		s.metrics.Moderation().Refused(metrics.RefusedPage, metrics.RefusedRemoved)
		return errRemoved(rm.Until)
	}
	if !mod.Locked.IsZero() {
		s.log.InfoContext(r.Context(), "channel page refused: locked", "client", addr, "channel", ch.ID)
		s.metrics.Moderation().Refused(metrics.RefusedPage, metrics.RefusedLocked)
		return errLocked
	}
	return nil
}

func pageModerationError(channelID string, err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return errNotFound
	}
	return fmt.Errorf("moderation of channel %s: %w", channelID, err)
}

// admitManager lets a manager's client in: it lifts a removal of it (a
// manager removed a device of their own) and admits it to the lock. It
// returns the moderation state as it now is.
func (s *Server) admitManager(r *http.Request, u store.User, ch store.Channel, c store.Client) (store.Moderation, error) {
	ctx := r.Context()
	mod, err := s.store.ModerationOf(ctx, ch)
	if err != nil {
		return mod, pageModerationError(ch.ID, err)
	}
	changed := false
	if _, removed := mod.Removal(c.ID); removed {
		if err := s.store.Unremove(ctx, ch.ID, c.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
			return mod, err
		}
		s.log.InfoContext(ctx, "channel member unremoved", "user", u.Name, "user_id", u.ID, "channel", ch.ID, "client", c.ID,
			"reason", "the manager's own client")
		s.metrics.Moderation().Action(metrics.ModUnremove)
		s.unkickClient(ctx, c.ID)
		changed = true
	}
	if !mod.Locked.IsZero() && !c.AdmittedTo(mod.Locked) {
		// Unlocked or relocked meanwhile: nothing to admit to.
		if err := s.store.Admit(ctx, ch.ID, c.ID, mod.Locked); err != nil && !errors.Is(err, store.ErrNotFound) {
			return mod, err
		}
		changed = true
	}
	if changed {
		if mod, err = s.store.Moderation(ctx, ch.ID); err != nil {
			return mod, pageModerationError(ch.ID, err)
		}
	}
	return mod, nil
}
