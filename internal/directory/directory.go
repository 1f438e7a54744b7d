// Package directory holds the /fsapi handlers for Verto clients: the
// directory lookup mod_verto makes when a client logs in, and the login and
// disconnect reports of the FreeSWITCH Lua hooks (and of the embedded hub),
// which keep each Client's connected time.
//
// FreeSWITCH's reports carry no session id, but both carry the address
// ("ip:port") of the client's WebSocket, which is unique per connection.
// A login report records it with the connected time, and a disconnect
// report clears the time only when its address is the recorded one: the
// close of an older connection (the tab a newer login punted, a report
// that arrives after the next login's) changes nothing. A report without
// an address (hooks older than the pack) clears as before.
//
// The answers also feed the FreeSWITCH pack's Lua hooks: a successful
// login report's answer names the client's channel (report.lua keeps it in
// mod_hash, where relay.lua checks that sender and target share a channel),
// and a disconnect report that asks for it (members=1) and clears the
// client names the channel's other connected clients, at most
// MaxLeaveMembers, to which report.lua sends the leaver's leave notice.
//
// A directory lookup is refused for a client its channel's managers
// removed, and, while the channel is locked, for one not admitted to the
// lock (see store's moderation.go). The client cache does not hide either:
// the channel's moderation state is read on every login, from the store's
// own cache of at most store.ModerationAge, which costs a channel that was
// never moderated at most one query a second.
//
// With MaxClientsPerChannel set, a directory lookup of a client that is
// not connected holds a place in its channel (ReserveLogin) until the
// login report arrives or ReservationTTL passes, so that simultaneous
// logins, whose reports come later, cannot all see the same free place.
//
// A client's directory entry gives its password, the few JSON-RPC methods
// the browser client needs, and its one channel as the only event channel
// it may use — so a logged-in client can publish to its own channel only.
package directory

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"text/template"
	"time"

	"channels/internal/fsapi"
	"channels/internal/metrics"
	"channels/internal/store"
)

// AllowedMethods is the jsonrpc-allowed-methods value of every client:
// what the browser client uses besides login.
const AllowedMethods = "echo,verto.subscribe,verto.unsubscribe,verto.broadcast,verto.info"

// Store is what the handlers need of the database; *store.Store has it.
type Store interface {
	ClientByID(ctx context.Context, id string) (store.Client, error)
	ClientLoggedIn(ctx context.Context, id, addr string, at time.Time) error
	ClientDisconnected(ctx context.Context, id, addr string) (bool, error)
	ConnectedClients(ctx context.Context, channelID, except string, limit int) ([]string, error)
	ReserveLogin(ctx context.Context, clientID, channelID string, limit int, now, until time.Time) (int, bool, error)
	ReleaseLogin(ctx context.Context, id string) error
	// Moderation is the channel's removals and lock, as read less than
	// store.ModerationAge ago (or changed since by this process).
	Moderation(ctx context.Context, channelID string) (store.Moderation, error)
}

// Options configure the handlers.
type Options struct {
	// Store holds the clients.
	Store Store
	// Domain is the Verto domain (force-register-domain); only lookups
	// for it match.
	Domain string
	// MaxClientsPerChannel, when positive, refuses the directory login of
	// a client that is not connected yet when its channel already has that
	// many clients connected or holding a place for a login in progress.
	MaxClientsPerChannel int
	// ReservationTTL is how long a directory login holds its place when no
	// login report arrives (0: DefaultReservationTTL).
	ReservationTTL time.Duration
	// Logger receives reports about unknown clients (nil: discard).
	Logger *slog.Logger
	// Now gives the connected time of login reports and the cache's clock
	// (nil: time.Now).
	Now func() time.Time
	// CacheTTL is how long a client's password and channel, which never
	// change, are kept in memory after a lookup (with its directory
	// entry, rendered) (0: DefaultCacheTTL;
	// negative: no cache). A client whose channel was deleted, or who was
	// removed from it, is refused despite the cache: every login reads
	// its channel's moderation state (at most store.ModerationAge old).
	// With MaxClientsPerChannel set, logins
	// read the store every time (connected counts change); the reports
	// still take the channel from the cache.
	CacheTTL time.Duration
	// CacheSize bounds the number of cached clients (0: DefaultCacheSize).
	CacheSize int
	// MaxLeaveMembers bounds the members a disconnect report's answer
	// names (0: DefaultMaxLeaveMembers).
	MaxLeaveMembers int
	// Metrics counts the logins moderation refuses (nil: not counted).
	Metrics *metrics.Moderation
}

// Defaults.
const (
	DefaultCacheTTL  = time.Minute
	DefaultCacheSize = 10000
	// DefaultReservationTTL covers mod_verto's password check and the
	// Lua hook's report, milliseconds apart, with room for a slow /fsapi.
	DefaultReservationTTL = 10 * time.Second
	// DefaultMaxLeaveMembers keeps the largest disconnect answer (37 bytes
	// a member) within the pack's mod_curl max-bytes, and a leave's chat
	// calls within what one event hook should do.
	DefaultMaxLeaveMembers = 1000
)

// MembersField is the form field with which a disconnect report asks for
// the members to tell ("1"): the pack's report.lua sends it, the embedded
// hub, which tells its channels itself, does not, and pays no query.
const MembersField = "members"

const userTemplate = `<document type="freeswitch/xml">
  <section name="directory">
    <domain name="{{xml .Domain}}">
      <user id="{{xml .ID}}">
        <params>
          <param name="password" value="{{xml .Password}}"/>
          <param name="jsonrpc-allowed-methods" value="{{xml .Methods}}"/>
          <param name="jsonrpc-allowed-event-channels" value="{{xml .Channel}}"/>
        </params>
      </user>
    </domain>
  </section>
</document>
`

const okTemplate = `<document type="freeswitch/xml">
  <section name="result">
    <result status="ok"/>
  </section>
</document>
`

// loggedInTemplate answers a successful login report with the client's
// channel.
const loggedInTemplate = `<document type="freeswitch/xml">
  <section name="result">
    <result status="ok" channel="{{xml .Channel}}"/>
  </section>
</document>
`

// leftTemplate answers a disconnect report that cleared the client and
// asked for the members: the channel's other connected clients,
// comma-separated; truncated when there were more than MaxLeaveMembers.
const leftTemplate = `<document type="freeswitch/xml">
  <section name="result">
    <result status="ok" cleared="true" members="{{xml .Members}}"{{if .Truncated}} truncated="true"{{end}}/>
  </section>
</document>
`

// loggedInData and leftData are the data of loggedInTemplate and
// leftTemplate.
type loggedInData struct{ Channel string }

type leftData struct {
	Members   string
	Truncated bool
}

// userData is the data of userTemplate.
type userData struct {
	Domain, ID, Password, Methods, Channel string
}

// Register adds, in this order, the Verto directory login handler and the
// login and disconnect report handlers to reg.
func Register(reg *fsapi.Registry, opts Options) error {
	if opts.Store == nil {
		return errors.New("directory: no store")
	}
	if opts.Domain == "" {
		return errors.New("directory: no domain")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.CacheTTL == 0 {
		opts.CacheTTL = DefaultCacheTTL
	}
	if opts.CacheSize <= 0 {
		opts.CacheSize = DefaultCacheSize
	}
	if opts.ReservationTTL <= 0 {
		opts.ReservationTTL = DefaultReservationTTL
	}
	if opts.MaxLeaveMembers <= 0 {
		opts.MaxLeaveMembers = DefaultMaxLeaveMembers
	}
	var c *cache
	if opts.CacheTTL > 0 {
		c = newCache(opts.CacheSize, opts.CacheTTL, opts.Now)
	}
	var tmpl [4]*template.Template
	for i, t := range []struct{ name, text string }{
		{"directory-user", userTemplate}, {"report-ok", okTemplate},
		{"report-logged-in", loggedInTemplate}, {"report-left", leftTemplate},
	} {
		var err error
		if tmpl[i], err = fsapi.ParseTemplate(t.name, t.text); err != nil {
			return fmt.Errorf("directory: %w", err)
		}
	}
	ch := channelOf{store: opts.Store, cache: c}
	reg.Add(&Login{opts: opts, tmpl: tmpl[0], cache: c, reg: reg})
	reg.Add(&LoginReport{opts: opts, ok: tmpl[1], loggedIn: tmpl[2], channel: ch})
	reg.Add(&DisconnectReport{opts: opts, ok: tmpl[1], left: tmpl[3], channel: ch})
	return nil
}

// channelOf finds a client's channel, which never changes: in the cache
// (the directory lookup of the login put it there moments before the
// reports), else in the store.
type channelOf struct {
	store Store
	cache *cache // nil: none
}

func (c channelOf) get(ctx context.Context, id string) (string, error) {
	if cl, ok := c.cache.get(id); ok {
		return cl.ChannelID, nil
	}
	cl, err := c.store.ClientByID(ctx, id)
	if err != nil {
		return "", err
	}
	c.cache.put(cl, nil)
	return cl.ChannelID, nil
}

// Login answers mod_verto's directory lookup for a logging-in client.
type Login struct {
	opts  Options
	tmpl  *template.Template
	cache *cache          // nil: none
	reg   *fsapi.Registry // renders the entries the cache keeps
}

// Requires implements fsapi.Handler.
func (h *Login) Requires() []fsapi.Pair {
	return []fsapi.Pair{
		{Key: "section", Value: "directory"},
		{Key: "action", Value: "jsonrpc-authenticate"},
		{Key: "domain", Value: h.opts.Domain},
	}
}

// Process implements fsapi.Handler: the client's directory entry, or
// ErrNotFound for a malformed or unknown user, for a client its channel's
// moderation refuses, and for a client whose channel is full.
func (h *Login) Process(ctx context.Context, form url.Values) (fsapi.Document, error) {
	id := form.Get("user")
	if !store.ValidID(id) {
		return fsapi.Document{}, fmt.Errorf("directory login: malformed user %q: %w", id, fsapi.ErrNotFound)
	}
	limit := h.opts.MaxClientsPerChannel
	if limit <= 0 {
		if cached, body, ok := h.cache.getEntry(id); ok {
			mod, err := h.moderation(ctx, cached)
			if err != nil {
				return fsapi.Document{}, err
			}
			// A locked channel needs the client's admission, which
			// changes: read from the store below.
			if mod.Locked.IsZero() {
				if err := h.refuse(ctx, mod, cached); err != nil {
					return fsapi.Document{}, err
				}
				if body != nil {
					return fsapi.Document{Body: body}, nil
				}
				// Cached by a report, without its entry: render it once
				// and keep it with the client.
				return h.rendered(id, cached)
			}
		}
	}
	c, err := h.opts.Store.ClientByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return fsapi.Document{}, fmt.Errorf("directory login: unknown client %s: %w", id, fsapi.ErrNotFound)
	}
	if err != nil {
		return fsapi.Document{}, fmt.Errorf("directory login %s: %w", id, err)
	}
	mod, err := h.moderation(ctx, c)
	if err != nil {
		return fsapi.Document{}, err
	}
	if err := h.refuse(ctx, mod, c); err != nil {
		return fsapi.Document{}, err
	}
	if limit > 0 && c.Connected.IsZero() {
		now := h.opts.Now()
		n, ok, err := h.opts.Store.ReserveLogin(ctx, id, c.ChannelID, limit, now, now.Add(h.opts.ReservationTTL))
		if errors.Is(err, store.ErrNotFound) {
			return fsapi.Document{}, fmt.Errorf("directory login: client %s gone: %w", id, fsapi.ErrNotFound)
		}
		if err != nil {
			return fsapi.Document{}, fmt.Errorf("directory login %s: %w", id, err)
		}
		if !ok {
			h.opts.Logger.InfoContext(ctx, "directory login refused: channel full",
				"client", id, "channel", c.ChannelID, "connected", n, "max", limit)
			return fsapi.Document{}, fmt.Errorf("directory login %s: channel %s full: %w", id, c.ChannelID, fsapi.ErrNotFound)
		}
	}
	if h.cache == nil {
		return h.document(c), nil
	}
	return h.rendered(id, c)
}

// rendered renders c's directory entry once, as the registry would, and
// caches it with c: later lookups of c answer it as it is.
func (h *Login) rendered(id string, c store.Client) (fsapi.Document, error) {
	body, err := h.reg.Render(h.document(c))
	if err != nil {
		return fsapi.Document{}, fmt.Errorf("directory login %s: %w", id, err)
	}
	h.cache.put(c, body)
	return fsapi.Document{Body: body}, nil
}

// moderation reads the moderation state of c's channel; a channel deleted
// meanwhile is not found.
func (h *Login) moderation(ctx context.Context, c store.Client) (store.Moderation, error) {
	mod, err := h.opts.Store.Moderation(ctx, c.ChannelID)
	if errors.Is(err, store.ErrNotFound) {
		return store.Moderation{}, fmt.Errorf("directory login: channel of client %s gone: %w", c.ID, fsapi.ErrNotFound)
	}
	if err != nil {
		return store.Moderation{}, fmt.Errorf("directory login %s: %w", c.ID, err)
	}
	return mod, nil
}

// refuse returns an error wrapping fsapi.ErrNotFound, logged and counted,
// when mod keeps c out; nil otherwise.
func (h *Login) refuse(ctx context.Context, mod store.Moderation, c store.Client) error {
	why := mod.Refusal(c)
	switch why {
	case "":
		return nil
	case store.RefusedRemoved:
		r, _ := mod.Removal(c.ID)
		h.opts.Logger.WarnContext(ctx, "directory login refused: removed from channel",
			"login", c.ID, "channel", c.ChannelID, "until", r.Until)
		h.opts.Metrics.Refused(metrics.RefusedLogin, metrics.RefusedRemoved)
	default:
		h.opts.Logger.InfoContext(ctx, "directory login refused: channel locked", "login", c.ID, "channel", c.ChannelID)
		h.opts.Metrics.Refused(metrics.RefusedLogin, metrics.RefusedLocked)
	}
	return fmt.Errorf("directory login %s: %s in channel %s: %w", c.ID, why, c.ChannelID, fsapi.ErrNotFound)
}

func (h *Login) document(c store.Client) fsapi.Document {
	return fsapi.Document{Template: h.tmpl, Data: userData{
		Domain:   h.opts.Domain,
		ID:       c.ID,
		Password: c.Password,
		Methods:  AllowedMethods,
		Channel:  c.ChannelID,
	}}
}

// LoginReport records a successful Verto login as the client's connected
// time, and answers with the client's channel.
type LoginReport struct {
	opts     Options
	ok       *template.Template
	loggedIn *template.Template
	channel  channelOf
}

// Requires implements fsapi.Handler.
func (h *LoginReport) Requires() []fsapi.Pair {
	return []fsapi.Pair{{Key: "action", Value: fsapi.ActionClientLogin}}
}

// Process implements fsapi.Handler. A failed login only frees the place
// its lookup held; a report about an unknown client is logged and answered
// not found. A successful one is answered with the client's channel
// (<result status="ok" channel="…"/>).
func (h *LoginReport) Process(ctx context.Context, form url.Values) (fsapi.Document, error) {
	login, addr := form.Get("login"), form.Get("address")
	if form.Get("success") != "1" {
		h.opts.Logger.DebugContext(ctx, "verto login failed", "login", login, "address", addr)
		if id := clientID(login, h.opts.Domain); h.opts.MaxClientsPerChannel > 0 && store.ValidID(id) {
			// Unknown ids are what failed logins are made of: not an error.
			if err := h.opts.Store.ReleaseLogin(ctx, id); err != nil && !errors.Is(err, store.ErrNotFound) {
				return fsapi.Document{}, fmt.Errorf("failed login report %s: %w", id, err)
			}
		}
		return fsapi.Document{Template: h.ok}, nil
	}
	var channel string
	err := h.opts.applyReport(ctx, "login report", login, func(ctx context.Context, id string) error {
		if err := h.opts.Store.ClientLoggedIn(ctx, id, addr, h.opts.Now()); err != nil {
			return err
		}
		var err error
		channel, err = h.channel.get(ctx, id)
		return err
	})
	if err != nil {
		return fsapi.Document{}, err
	}
	return fsapi.Document{Template: h.loggedIn, Data: loggedInData{Channel: channel}}, nil
}

// DisconnectReport clears the client's connected time when the closed
// connection is the one of the client's latest login, and then, when the
// report asks (MembersField), names the channel's other connected
// clients.
type DisconnectReport struct {
	opts    Options
	ok      *template.Template
	left    *template.Template
	channel channelOf
}

// Requires implements fsapi.Handler.
func (h *DisconnectReport) Requires() []fsapi.Pair {
	return []fsapi.Pair{{Key: "action", Value: fsapi.ActionClientDisconnect}}
}

// Process implements fsapi.Handler. A report about an unknown client is
// logged and answered not found; one about an older connection than the
// latest login's is answered ok and changes nothing. One that clears the
// client and carries members=1 is answered
// <result status="ok" cleared="true" members="id,id,…"/>: the other
// connected clients of its channel, the most recently connected first, at
// most MaxLeaveMembers (then with truncated="true").
func (h *DisconnectReport) Process(ctx context.Context, form url.Values) (fsapi.Document, error) {
	addr := form.Get("address")
	want := form.Get(MembersField) == "1"
	var left *leftData
	err := h.opts.applyReport(ctx, "disconnect report", form.Get("login"), func(ctx context.Context, id string) error {
		cleared, err := h.opts.Store.ClientDisconnected(ctx, id, addr)
		if err != nil {
			return err
		}
		if !cleared {
			h.opts.Logger.DebugContext(ctx, "disconnect of an older connection ignored", "client", id, "address", addr)
			return nil
		}
		if !want {
			return nil
		}
		channel, err := h.channel.get(ctx, id)
		if err != nil {
			return err
		}
		max := h.opts.MaxLeaveMembers
		ids, err := h.opts.Store.ConnectedClients(ctx, channel, id, max+1)
		if err != nil {
			return err
		}
		left = &leftData{Truncated: len(ids) > max}
		if left.Truncated {
			ids = ids[:max]
		}
		left.Members = strings.Join(ids, ",")
		return nil
	})
	if err != nil {
		return fsapi.Document{}, err
	}
	if left != nil {
		return fsapi.Document{Template: h.left, Data: *left}, nil
	}
	return fsapi.Document{Template: h.ok}, nil
}

// applyReport applies a report (what: "login report", "disconnect
// report") about the client a Verto login names by calling update with the
// client's id. A malformed login or an unknown client is logged and gives
// an error wrapping fsapi.ErrNotFound.
func (o Options) applyReport(ctx context.Context, what, login string, update func(ctx context.Context, id string) error) error {
	id := clientID(login, o.Domain)
	if !store.ValidID(id) {
		o.Logger.InfoContext(ctx, what+" for a malformed client id", "login", login)
		return fmt.Errorf("%s: malformed login %q: %w", what, login, fsapi.ErrNotFound)
	}
	err := update(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		o.Logger.InfoContext(ctx, what+" for an unknown client", "client", id)
		return fmt.Errorf("%s: unknown client %s: %w", what, id, fsapi.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, id, err)
	}
	return nil
}

// clientID takes the client id out of a Verto login: "id" or "id@domain"
// (disconnect events carry the latter). Another domain gives "", which is
// not a valid id.
func clientID(login, domain string) string {
	id, dom, found := strings.Cut(login, "@")
	if found && dom != domain {
		return ""
	}
	return id
}
