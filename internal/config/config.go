// Package config holds the settings of a Channels deployment: defaults,
// command-line flags and CHANNELS_* environment variables, in that order of
// precedence (flags win).
package config

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"channels/internal/turn"
)

// Config is the whole configuration of one Channels process. It is built
// once at start-up and then only read.
type Config struct {
	// Listen is the TCP address the HTTP server binds.
	Listen string
	// BaseURL is the public URL of the site (scheme, host, optional port).
	BaseURL string
	// DataDir holds the SQLite database and other local state.
	DataDir string
	// DatabaseURL selects the database: "postgres://…" for PostgreSQL,
	// otherwise a SQLite file path (default: DataDir/channels.db).
	DatabaseURL string
	// DatabasePool bounds the PostgreSQL connections this process opens
	// (SQLite keeps its own small pool). Every process of a cluster opens
	// up to this many, so processes × DatabasePool must stay below the
	// server's max_connections (100 by default, 3 of them reserved).
	DatabasePool int
	// SessionLifetime is how long a browser session lives.
	SessionLifetime time.Duration
	// LogFormat is "text" or "json".
	LogFormat string
	// LogLevel is "debug", "info", "warn" or "error".
	LogLevel string

	// VertoURL is the WebSocket URL browsers use for signalling. Empty means
	// the embedded hub at /verto on the same host as the page.
	VertoURL string
	// ICEServers is the STUN/TURN list handed to browsers.
	ICEServers []ICEServer
	// TURNSecret is the static-auth-secret of a TURN server that takes
	// time-limited credentials (coturn's use-auth-secret); with it each
	// page gets credentials for TURNURLs that expire after TURNTTL.
	TURNSecret string
	TURNURLs   []string
	TURNTTL    time.Duration
	// ICERelayOnly makes browsers use only relayed (TURN) candidates, so
	// peers never learn each other's addresses.
	ICERelayOnly bool
	// Domain is the Verto/FreeSWITCH domain (force-register-domain).
	Domain string

	// FSAPIUser and FSAPIPassword are the HTTP basic credentials
	// mod_xml_curl sends (gateway-credentials). The password also proves
	// the origin of the Lua hooks' reports, which mod_curl sends without
	// basic credentials.
	FSAPIUser     string
	FSAPIPassword string
	// FSAPINetworks lists the client networks allowed to call /fsapi.
	FSAPINetworks []netip.Prefix
	// FreeSWITCHHostname, when set, must equal the hostname field of
	// /fsapi requests.
	FreeSWITCHHostname string
	// VertoBind is the address mod_verto binds (served in verto.conf).
	VertoBind string
	// VertoTLSCert, when set, makes verto.conf ask for a secure listener.
	VertoTLSCert string
	// MaxClientsPerChannel limits connected clients per channel (0: off).
	MaxClientsPerChannel int
	// MaxCallSize is the most people in one call, 2 to
	// DefaultMaxCallSize: the browser client calls peer to peer, each
	// browser sending its video to every other, so the load on each
	// grows with the call. The channel page hands it to the client.
	MaxCallSize int
	// MaxStoredClients is the ceiling on stored clients, and on stored
	// sessions: while the database holds that many, a channel page view
	// that would store a new one is refused (503). Visitors whose session
	// has their client, and signed-in users, are never refused.
	MaxStoredClients int
	// HubBytesPerAddress bounds, in KiB a second, the frames the embedded
	// hub's connections from one address may send together (a burst of
	// four seconds' worth).
	HubBytesPerAddress int

	// ClusterURL, when set, joins the embedded hubs of every process
	// given the same URL and prefix into one over NATS
	// (nats://[user:pass@]host:4222, tls://…; a comma-separated list for
	// a NATS cluster).
	ClusterURL string
	// ClusterPrefix is the root of the cluster's NATS subjects.
	ClusterPrefix string
	// ClusterExpiry is how long a process may stay silent on NATS before
	// the others take it for dead.
	ClusterExpiry time.Duration

	// AllowedOrigins lists the Origins allowed to open /verto, besides
	// BaseURL's own.
	AllowedOrigins []string
	// TrustedProxies lists the reverse proxies whose X-Forwarded-For is
	// believed, for the web app's and the hub's per-address limits.
	TrustedProxies []netip.Prefix

	// MetricsListen, when set, is the TCP address of a separate listener
	// serving Prometheus metrics at /metrics (never the public site).
	MetricsListen string
}

// ICEServer is one entry of RTCConfiguration.iceServers.
type ICEServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

// Default returns the configuration used when nothing is set.
func Default() Config {
	return Config{
		Listen:             "127.0.0.1:8080",
		BaseURL:            "http://localhost:8080",
		DataDir:            "data",
		SessionLifetime:    14 * 24 * time.Hour,
		LogFormat:          "text",
		LogLevel:           "info",
		FSAPIUser:          "freeswitch",
		FSAPINetworks:      []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")},
		VertoBind:          "127.0.0.1:8081",
		ClusterPrefix:      "channels",
		ClusterExpiry:      DefaultClusterExpiry,
		HubBytesPerAddress: DefaultHubBytesPerAddress,
		DatabasePool:       DefaultDatabasePool,
		MaxStoredClients:   DefaultMaxStoredClients,
		MaxCallSize:        DefaultMaxCallSize,
		TURNTTL:            24 * time.Hour,
	}
}

// DefaultDatabasePool is the default of -database-pool: PostgreSQL
// connections per process. On the 2-core development machine the channel
// page (two queries a view, 64 connections) served as many requests with
// 4 connections as with 16 or 32 (docs/HUB.md); 16 leave room for bursts
// and slow queries while six processes stay within PostgreSQL's default
// of 100 connections (it was 32: three processes nearly filled it).
const DefaultDatabasePool = 16

// DefaultMaxStoredClients is the default of -max-stored-clients (and
// web.DefaultMaxStoredClients). A client and its session take about
// 650 bytes on SQLite and 0.9 to 1.6 KB on PostgreSQL (the more, the
// further autovacuum lags behind their updates), so the ceiling keeps
// them under about 160 MB on SQLite and 220 to 400 MB on PostgreSQL,
// whatever the number of addresses filling them; one address alone
// plateaus at about 121,000 over a 14-day session lifetime
// (docs/OPERATIONS.md, "Stored visitors").
const DefaultMaxStoredClients = 250_000

// DefaultMaxCallSize is the default of -max-call-size, and its most:
// every browser in a call sends its video to every other, so a call of
// n people has each upload n-1 streams and decode as many; 6 is the most
// ordinary laptops and phones carry. The browser client is built for
// calls of up to this many.
const DefaultMaxCallSize = 6

// DefaultHubBytesPerAddress is the default of -hub-bytes-per-address,
// KiB a second: far above what the browser client sends (its budgets
// keep a member under ~130 KiB/s), far below what parsing a flood costs.
const DefaultHubBytesPerAddress = 1024

// DefaultClusterExpiry is the default of -cluster-expiry (see
// cluster.DefaultExpiry, which it equals, for the measurement behind it).
const DefaultClusterExpiry = 10 * time.Second

// Secure reports whether the site is served over HTTPS, which decides the
// Secure attribute of cookies.
func (c Config) Secure() bool { return strings.HasPrefix(c.BaseURL, "https://") }

// Database returns the database URL, defaulting to a SQLite file in the data
// directory.
func (c Config) Database() string {
	if c.DatabaseURL != "" {
		return c.DatabaseURL
	}
	return filepath.Join(c.DataDir, "channels.db")
}

// VertoDomain returns the Verto domain: Domain, or the host of BaseURL.
func (c Config) VertoDomain() string {
	if c.Domain != "" {
		return c.Domain
	}
	u, err := url.Parse(c.BaseURL)
	if err != nil || u.Hostname() == "" {
		return "localhost"
	}
	return u.Hostname()
}

// FlagSet returns a flag set whose flags write into c. Values already in c
// are the defaults shown in -help.
func (c *Config) FlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.StringVar(&c.Listen, "listen", c.Listen, "TCP address to listen on (CHANNELS_LISTEN)")
	fs.StringVar(&c.BaseURL, "base-url", c.BaseURL, "public base URL of the site (CHANNELS_BASE_URL)")
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "directory for the SQLite database (CHANNELS_DATA_DIR)")
	fs.StringVar(&c.DatabaseURL, "database-url", c.DatabaseURL, "postgres:// URL or SQLite file; default DATA_DIR/channels.db (CHANNELS_DATABASE_URL)")
	fs.IntVar(&c.DatabasePool, "database-pool", c.DatabasePool, "PostgreSQL connections this process may open; keep processes × pool below the server's max_connections (CHANNELS_DATABASE_POOL)")
	fs.DurationVar(&c.SessionLifetime, "session-lifetime", c.SessionLifetime, "lifetime of browser sessions (CHANNELS_SESSION_LIFETIME)")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "log format: text or json (CHANNELS_LOG_FORMAT)")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "log level: debug, info, warn, error (CHANNELS_LOG_LEVEL)")
	fs.StringVar(&c.VertoURL, "verto-url", c.VertoURL, "WebSocket URL of the signalling server; empty: embedded hub at /verto (CHANNELS_VERTO_URL)")
	fs.Func("ice-servers", "comma-separated STUN/TURN URLs; user:pass@ before a turn: host sets credentials (CHANNELS_ICE_SERVERS)", func(s string) error {
		v, err := ParseICEServers(s)
		c.ICEServers = v
		return err
	})
	// A Func flag shows no default in -help, so the secret from the
	// environment is never printed.
	fs.Func("turn-secret", "static-auth-secret of the TURN server for time-limited credentials (CHANNELS_TURN_SECRET)", func(s string) error {
		c.TURNSecret = s
		return nil
	})
	fs.Func("turn-urls", "comma-separated turn:/turns: URLs the time-limited credentials are for (CHANNELS_TURN_URLS)", func(s string) error {
		c.TURNURLs = splitList(s)
		return nil
	})
	fs.DurationVar(&c.TURNTTL, "turn-ttl", c.TURNTTL, "lifetime of time-limited TURN credentials (CHANNELS_TURN_TTL)")
	fs.BoolVar(&c.ICERelayOnly, "ice-relay-only", c.ICERelayOnly, "browsers use TURN relays only, never direct or STUN paths (CHANNELS_ICE_RELAY_ONLY)")
	fs.StringVar(&c.Domain, "domain", c.Domain, "Verto domain; default: host of the base URL (CHANNELS_DOMAIN)")
	fs.StringVar(&c.FSAPIUser, "fsapi-user", c.FSAPIUser, "user name FreeSWITCH sends to /fsapi (CHANNELS_FSAPI_USER)")
	fs.StringVar(&c.FSAPIPassword, "fsapi-password", c.FSAPIPassword, "password FreeSWITCH sends to /fsapi; empty disables /fsapi over HTTP (CHANNELS_FSAPI_PASSWORD)")
	fs.Func("fsapi-networks", "comma-separated networks allowed to call /fsapi (CHANNELS_FSAPI_NETWORKS)", func(s string) error {
		v, err := ParsePrefixes(s)
		c.FSAPINetworks = v
		return err
	})
	fs.StringVar(&c.FreeSWITCHHostname, "freeswitch-hostname", c.FreeSWITCHHostname, "FreeSWITCH host name /fsapi requests must carry (CHANNELS_FREESWITCH_HOSTNAME)")
	fs.StringVar(&c.VertoBind, "verto-bind", c.VertoBind, "address mod_verto binds, served in verto.conf (CHANNELS_VERTO_BIND)")
	fs.StringVar(&c.VertoTLSCert, "verto-tls-cert", c.VertoTLSCert, "certificate file for mod_verto's secure listener (CHANNELS_VERTO_TLS_CERT)")
	fs.IntVar(&c.MaxClientsPerChannel, "max-clients-per-channel", c.MaxClientsPerChannel, "connected clients allowed per channel, 0 for no limit (CHANNELS_MAX_CLIENTS_PER_CHANNEL)")
	fs.IntVar(&c.MaxCallSize, "max-call-size", c.MaxCallSize, "most people in one call, 2 to 6: each browser sends its video to every other, so 6 is the most ordinary laptops and phones carry (CHANNELS_MAX_CALL_SIZE)")
	fs.IntVar(&c.MaxStoredClients, "max-stored-clients", c.MaxStoredClients, "clients (and sessions) the database may hold before channel pages refuse new visitors with 503; returning visitors and signed-in users still get in (CHANNELS_MAX_STORED_CLIENTS)")
	fs.IntVar(&c.HubBytesPerAddress, "hub-bytes-per-address", c.HubBytesPerAddress, "KiB a second the embedded hub's WebSockets from one address may send together, bursts of 4 s (CHANNELS_HUB_BYTES_PER_ADDRESS)")
	fs.StringVar(&c.ClusterURL, "cluster-url", c.ClusterURL, "NATS server(s) joining the embedded hubs of several processes, nats://[user:pass@]host:4222 or tls://…; empty: one process (CHANNELS_CLUSTER_URL)")
	fs.StringVar(&c.ClusterPrefix, "cluster-prefix", c.ClusterPrefix, "root of the cluster's NATS subjects (CHANNELS_CLUSTER_PREFIX)")
	fs.DurationVar(&c.ClusterExpiry, "cluster-expiry", c.ClusterExpiry, "how long a process may stay silent on NATS before the others take it for dead (CHANNELS_CLUSTER_EXPIRY)")
	fs.Func("allowed-origins", "comma-separated extra Origins allowed to open /verto (CHANNELS_ALLOWED_ORIGINS)", func(s string) error {
		c.AllowedOrigins = splitList(s)
		return nil
	})
	fs.Func("trusted-proxies", "comma-separated networks of reverse proxies whose X-Forwarded-For is believed (CHANNELS_TRUSTED_PROXIES)", func(s string) error {
		v, err := ParsePrefixes(s)
		c.TrustedProxies = v
		return err
	})
	fs.StringVar(&c.MetricsListen, "metrics-listen", c.MetricsListen, "TCP address of a separate listener serving Prometheus metrics at /metrics, e.g. 127.0.0.1:9090; empty: off (CHANNELS_METRICS_LISTEN)")
	return fs
}

// Load builds a configuration from defaults, the environment (getenv) and
// command-line arguments, and validates it. It returns the remaining
// arguments.
func Load(name string, args []string, getenv func(string) string) (Config, []string, error) {
	l := NewLoader(name, getenv)
	if err := l.FlagSet.Parse(args); err != nil {
		return l.Config, nil, err
	}
	c, err := l.Finish()
	return c, l.FlagSet.Args(), err
}

// Loader builds a Config in two steps, so that a command can add flags of
// its own and parse its arguments in between: NewLoader applies the
// defaults and the environment, the caller parses FlagSet (which writes
// into Config), and Finish validates the result once, after both.
type Loader struct {
	// Config is the configuration being built.
	Config Config
	// FlagSet holds the configuration flags; parsing it overrides the
	// environment.
	FlagSet *flag.FlagSet
	envErrs map[string]error // by flag name: environment values that did not parse
}

// NewLoader returns a Loader whose Config holds the defaults overridden
// by the CHANNELS_* variables getenv gives.
func NewLoader(name string, getenv func(string) string) *Loader {
	l := &Loader{Config: Default(), envErrs: map[string]error{}}
	// The environment goes through a flag set of its own over the same
	// Config, so its values parse like flags; the command-line flag set is
	// made after it, shows the environment's values as defaults in -help,
	// and tells by Visit which settings the command line gave.
	env := l.Config.FlagSet(name)
	env.VisitAll(func(f *flag.Flag) {
		key := EnvName(f.Name)
		if v := getenv(key); v != "" {
			if err := env.Set(f.Name, v); err != nil {
				l.envErrs[f.Name] = fmt.Errorf("%s: %w", key, err)
			}
		}
	})
	l.FlagSet = l.Config.FlagSet(name)
	return l
}

// EnvName is the environment variable of a flag: CHANNELS_ and the name in
// capitals with "-" as "_".
func EnvName(flagName string) string {
	return "CHANNELS_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Finish returns the configuration after FlagSet has been parsed: an
// environment value that did not parse is an error unless a flag replaced
// it, then the whole is validated, once.
func (l *Loader) Finish() (Config, error) {
	l.FlagSet.Visit(func(f *flag.Flag) { delete(l.envErrs, f.Name) })
	var first error
	l.FlagSet.VisitAll(func(f *flag.Flag) { // in name order: deterministic
		if err := l.envErrs[f.Name]; err != nil && first == nil {
			first = err
		}
	})
	if first != nil {
		return l.Config, first
	}
	return l.Config, l.Config.Validate()
}

// LoadOS is Load with the process environment.
func LoadOS(name string, args []string) (Config, []string, error) {
	return Load(name, args, os.Getenv)
}

// Validate reports the first setting that cannot work.
func (c Config) Validate() error {
	u, err := url.Parse(c.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("base URL %q: want http(s)://host[:port]", c.BaseURL)
	}
	if c.VertoURL != "" {
		v, err := url.Parse(c.VertoURL)
		if err != nil || (v.Scheme != "ws" && v.Scheme != "wss") || v.Host == "" {
			return fmt.Errorf("verto URL %q: want ws(s)://host[:port]/path", c.VertoURL)
		}
	}
	if c.SessionLifetime <= 0 {
		return errors.New("session lifetime must be positive")
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		return fmt.Errorf("log format %q: want text or json", c.LogFormat)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log level %q: want debug, info, warn or error", c.LogLevel)
	}
	if err := validCluster(c.ClusterURL, c.ClusterPrefix); err != nil {
		return err
	}
	if c.HubBytesPerAddress < 64 {
		return fmt.Errorf("hub bytes per address %d KiB/s: want at least 64 (a burst must hold the largest frame, 256 KiB)", c.HubBytesPerAddress)
	}
	if c.ClusterExpiry < 2*time.Second {
		return fmt.Errorf("cluster expiry %v: want at least 2s (heartbeats go every second)", c.ClusterExpiry)
	}
	if c.DatabasePool < 1 {
		return fmt.Errorf("database pool %d: want at least 1 connection", c.DatabasePool)
	}
	if c.MaxClientsPerChannel < 0 {
		return errors.New("max clients per channel must not be negative")
	}
	if c.MaxCallSize < 2 || c.MaxCallSize > DefaultMaxCallSize {
		return fmt.Errorf("max call size %d: want 2 to %d people (each browser sends its video to every other)", c.MaxCallSize, DefaultMaxCallSize)
	}
	if c.MaxStoredClients < 1 {
		return fmt.Errorf("max stored clients %d: want at least 1 (the default is %d)", c.MaxStoredClients, DefaultMaxStoredClients)
	}
	if c.MetricsListen != "" {
		_, port, err := net.SplitHostPort(c.MetricsListen)
		if err != nil {
			return fmt.Errorf("metrics listen address %q: want host:port", c.MetricsListen)
		}
		if c.MetricsListen == c.Listen && port != "0" {
			return fmt.Errorf("metrics listen address %q is the public listen address: metrics need a listener of their own", c.MetricsListen)
		}
	}
	return c.validateTURN()
}

// MinTURNSecret is the shortest TURN secret accepted: anyone who sees one
// credential can test guesses of the secret against it offline.
const MinTURNSecret = 16

// validateTURN checks the TURN settings. Errors never show the secret.
func (c Config) validateTURN() error {
	switch {
	case c.TURNSecret != "" && len(c.TURNURLs) == 0:
		return errors.New("TURN secret set without TURN URLs: set -turn-urls too")
	case c.TURNSecret == "" && len(c.TURNURLs) > 0:
		return errors.New("TURN URLs set without a TURN secret: set -turn-secret, or give static credentials in -ice-servers")
	case c.TURNSecret != "" && len(c.TURNSecret) < MinTURNSecret:
		return fmt.Errorf("TURN secret too short: want at least %d characters (e.g. openssl rand -hex 32)", MinTURNSecret)
	}
	for _, u := range c.TURNURLs {
		if !turn.ValidURL(u) {
			return fmt.Errorf("TURN URL %q: want turn:host[:port] or turns:host[:port]", u)
		}
	}
	if c.TURNSecret != "" && c.TURNTTL < time.Minute {
		return fmt.Errorf("TURN credential lifetime %v: want at least a minute", c.TURNTTL)
	}
	if c.ICERelayOnly && len(c.TURNURLs) == 0 && !slices.ContainsFunc(c.ICEServers, func(s ICEServer) bool {
		return slices.ContainsFunc(s.URLs, turn.ValidURL)
	}) {
		return errors.New("relay-only ICE without a TURN server: set -turn-urls or a turn: URL in -ice-servers")
	}
	return nil
}

// ParsePrefixes parses a comma-separated list of networks; a bare address
// is a network of one.
func ParsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, item := range splitList(s) {
		if p, err := netip.ParsePrefix(item); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(item)
		if err != nil {
			return nil, fmt.Errorf("network %q: want an address or CIDR prefix", item)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// ParseICEServers parses "stun:host:3478,user:pass@turn:host:3478".
func ParseICEServers(s string) ([]ICEServer, error) {
	var out []ICEServer
	for _, item := range splitList(s) {
		var srv ICEServer
		if at := strings.LastIndex(item, "@"); at >= 0 && (strings.Contains(item[at:], "turn:") || strings.Contains(item[at:], "turns:")) {
			cred := item[:at]
			item = item[at+1:]
			user, pass, ok := strings.Cut(cred, ":")
			if !ok {
				return nil, fmt.Errorf("ICE server credentials %q: want user:password", cred)
			}
			srv.Username, srv.Credential = user, pass
		}
		if !strings.HasPrefix(item, "stun:") && !strings.HasPrefix(item, "turn:") && !strings.HasPrefix(item, "turns:") {
			return nil, fmt.Errorf("ICE server %q: want stun:, turn: or turns: URL", item)
		}
		srv.URLs = []string{item}
		out = append(out, srv)
	}
	return out, nil
}

func splitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// validCluster checks the NATS URLs (each nats, tls, ws or wss with a
// host) and the subject prefix (dot-separated tokens of letters, digits,
// '-' and '_'). Errors never show a password.
func validCluster(urls, prefix string) error {
	if urls != "" {
		for _, item := range strings.Split(urls, ",") {
			u, err := url.Parse(strings.TrimSpace(item))
			if err != nil || u.Host == "" {
				return errors.New("cluster URL: want nats://[user:pass@]host:port or tls://host:port")
			}
			switch u.Scheme {
			case "nats", "tls", "ws", "wss":
			default:
				return fmt.Errorf("cluster URL: scheme %q: want nats, tls, ws or wss", u.Scheme)
			}
		}
	}
	if prefix == "" || len(prefix) > 64 {
		return errors.New("cluster prefix: want 1 to 64 characters")
	}
	for _, tok := range strings.Split(prefix, ".") {
		if tok == "" || strings.Trim(tok, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") != "" {
			return fmt.Errorf("cluster prefix %q: want letters, digits, '-' and '_', dot-separated", prefix)
		}
	}
	return nil
}
