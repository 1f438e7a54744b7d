// Package web is the Channels web application: server-rendered pages for
// the channel list, the channel page that hands a browser its client
// credentials, sign-in and sign-out, and channel management; browser
// sessions; and the security headers every response carries.
//
// All routes are in one table (routes.go); handlers are methods on Server,
// one file per action.
package web

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"runtime"
	"sync"
	"time"

	"github.com/alexedwards/scs/v2"

	"channels/internal/config"
	"channels/internal/metrics"
	"channels/internal/password"
	"channels/internal/store"
)

// Assets names the browser client's files by their content-hashed URLs
// (internal/webclient's *Assets implements it).
type Assets interface {
	URL(name string) string
}

// Options are the dependencies of a Server.
type Options struct {
	Config config.Config
	Store  *store.Store
	// Assets gives the URLs of site.css and channel.js.
	Assets Assets
	// Static, when set, serves the browser client's files under /static/.
	Static http.Handler
	// Logger receives request errors; nil discards them.
	Logger *slog.Logger
	// NewClientBurst and NewClientEvery are the budget of new clients (and
	// so new sessions) per client address on the channel page; zero means
	// DefaultNewClientBurst and DefaultNewClientEvery.
	NewClientBurst int
	NewClientEvery time.Duration
	// MaxStoredClients is the ceiling on stored clients and on stored
	// sessions (-max-stored-clients): while the database holds it, a
	// channel page view that would store a new one is a 503 (ceiling.go);
	// zero means DefaultMaxStoredClients.
	MaxStoredClients int
	// MaxCallSize is the most people in one call (-max-call-size), which
	// the channel page hands the browser client as maxCall; zero means
	// DefaultMaxCallSize.
	MaxCallSize int
	// Metrics counts sign-ins and rate limits, and labels HTTP metrics
	// with this app's route patterns (nil: no metrics).
	Metrics *metrics.Web
	// Kick, when set, ends at once every connection of a client a
	// manager just removed from its channel (the embedded hub's Remove);
	// nil with FreeSWITCH, whose sockets stay until they close (the
	// directory refuses their next login).
	Kick func(ctx context.Context, clientID string)
	// Unkick, when set, lets a client whose removal a manager just ended
	// log in again at once (the embedded hub's Unremove, which drops the
	// hub's own short refusal after Kick); nil with FreeSWITCH.
	Unkick func(ctx context.Context, clientID string)
}

// Server is the web application. It is an http.Handler.
type Server struct {
	cfg      config.Config
	store    *store.Store
	assets   Assets
	static   http.Handler
	log      *slog.Logger
	sessions *scs.SessionManager
	pages    map[string]*template.Template
	handler  http.Handler
	now      func() time.Time

	// Sign-in attempts are limited per client address; failures per user
	// name and address and per user name, or, from a trusted device of the
	// user, per device instead (see signInCheck).
	byAddr, byName, byPair, byDevice *limiter
	// verify checks a password against a hash: password.Verify, which
	// tests replace with a slow fake to line attempts up.
	verify func(password, hash string) (bool, error)
	// hashing holds a place per password verification under way: each
	// takes about 19 MiB (argon2id), so their number is capped, and a
	// sign-in that cannot get a place within hashWait is answered 503.
	hashing  chan struct{}
	hashWait time.Duration
	// newClients is each address's budget for creating clients.
	newClients *limiter
	// stored counts the clients and sessions in the database, against
	// their ceiling (ceiling.go).
	stored  *storedRows
	metrics *metrics.Web // nil: none
	// maxCall is the most people in one call, for the channel page.
	maxCall int
	// ice gives each client its STUN/TURN servers (channel_ice.go).
	ice *iceSource
	// kick closes a removed client's connections (Options.Kick; nil:
	// none to close).
	kick func(ctx context.Context, clientID string)
	// unkick lets an unremoved client log in again (Options.Unkick; nil:
	// nothing to lift).
	unkick func(ctx context.Context, clientID string)
	// modReads is each client's budget of GET /c/{id}/moderation.
	modReads *limiter
	// dummyHash is verified against when the user name is unknown, so a
	// failed sign-in takes as long whether or not the name exists. It is
	// made on first use: hashing costs tens of milliseconds.
	dummyHash func() (string, error)
	// health is /healthz's write check, made at most once a second.
	health healthCheck
}

// Sign-in limits: a burst, then one more per interval. byAddr counts
// attempts; byPair and byName count failures.
const (
	addrBurst = 10
	addrEvery = 6 * time.Second
	pairBurst = 5
	pairEvery = time.Minute
	nameBurst = 20
	nameEvery = 12 * time.Second
	// A trusted device (a browser that signed in, see trustDevice) is
	// exempt from byPair and byName; its own failures are limited per
	// device instead, so a stolen device cookie still guesses slowly.
	deviceBurst = 5
	deviceEvery = time.Minute
	// deviceLifetime is how long a device stays trusted after its last
	// sign-in; maxDevices bounds each user's trusted devices (the oldest
	// are forgotten).
	deviceLifetime = 90 * 24 * time.Hour
	maxDevices     = 20
	// maxTracked bounds the memory of each limiter.
	maxTracked = 10000
)

// Default budget for new clients per address: every new client is a
// database row and a new browser session (kept for the session lifetime),
// so a visitor without a cookie cannot make the server store without
// bound. A burst covers a person opening many channels, or an office
// behind one NAT opening one link; then one more every interval.
const (
	DefaultNewClientBurst = 30
	DefaultNewClientEvery = 10 * time.Second
)

// DefaultMaxCallSize is the most people in one call when Options leave
// it zero: -max-call-size's default, and its most.
const DefaultMaxCallSize = config.DefaultMaxCallSize

// maxFormBytes bounds the body of every form POST.
const maxFormBytes = 16 << 10

// New builds the web application.
func New(opts Options) (*Server, error) {
	if opts.Store == nil {
		return nil, errors.New("web: no store")
	}
	if opts.Assets == nil {
		return nil, errors.New("web: no assets")
	}
	if err := opts.Config.Validate(); err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	for _, name := range []string{"site.css", "channel.js"} {
		if opts.Assets.URL(name) == "" {
			return nil, fmt.Errorf("web: browser client file %s missing", name)
		}
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	pages, err := parseTemplates(opts.Assets)
	if err != nil {
		return nil, err
	}
	if opts.NewClientBurst <= 0 {
		opts.NewClientBurst = DefaultNewClientBurst
	}
	if opts.NewClientEvery <= 0 {
		opts.NewClientEvery = DefaultNewClientEvery
	}
	if opts.MaxStoredClients <= 0 {
		opts.MaxStoredClients = DefaultMaxStoredClients
	}
	if opts.MaxCallSize <= 0 {
		opts.MaxCallSize = DefaultMaxCallSize
	}
	s := &Server{
		cfg:        opts.Config,
		store:      opts.Store,
		assets:     opts.Assets,
		static:     opts.Static,
		log:        log,
		pages:      pages,
		now:        time.Now,
		byAddr:     newLimiter(addrBurst, addrEvery, maxTracked),
		byName:     newLimiter(nameBurst, nameEvery, maxTracked),
		byPair:     newLimiter(pairBurst, pairEvery, maxTracked),
		byDevice:   newLimiter(deviceBurst, deviceEvery, maxTracked),
		verify:     password.Verify,
		hashing:    make(chan struct{}, max(2, runtime.GOMAXPROCS(0))),
		hashWait:   5 * time.Second,
		dummyHash:  sync.OnceValues(func() (string, error) { return password.Hash("no such user") }),
		newClients: newLimiter(opts.NewClientBurst, opts.NewClientEvery, maxTracked),
		stored:     &storedRows{max: int64(opts.MaxStoredClients)},
		metrics:    opts.Metrics,
		maxCall:    opts.MaxCallSize,
		kick:       opts.Kick,
		unkick:     opts.Unkick,
		modReads:   newLimiter(modReadBurst, modReadEvery, maxTracked),
	}
	// Credentials are minted by s.now, which tests may replace.
	if s.ice, err = newICE(opts.Config, func() time.Time { return s.now() }); err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	s.sessions = s.newSessionManager()
	s.handler = s.compressPages(s.secure(opts.Metrics.Routes(s.routes())))
	return s, nil
}

// ServeHTTP serves the application.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.handler.ServeHTTP(w, r)
}
