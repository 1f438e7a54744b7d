// Package freeswitch holds the FreeSWITCH configuration pack of Channels —
// a complete, minimal configuration directory (core, modules, xml_curl
// bindings to /fsapi, Lua hooks, logging, an event socket on loopback) and
// the Lua scripts (the direct-message relay, which carries messages only
// between clients of one channel, and the login and disconnect reports,
// which keep mod_hash's client → channel table and send a member's leave
// when its last socket closes) — as templates embedded in the binary, and Write, which fills them in for one
// deployment. Every module it loads finds its configuration, so a correct
// set-up starts without an error line.
//
// FreeSWITCH started with the written directory as its configuration
// directory (freeswitch -conf DIR) asks Channels' /fsapi for Verto logins
// and for verto.conf; see docs/FREESWITCH.md.
package freeswitch

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"embed"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"text/template"
	"text/template/parse"
	"time"

	"channels/internal/config"
	"channels/internal/fsapi"
	"channels/internal/vertoconf"
)

//go:embed pack
var pack embed.FS

// Params are a deployment's values for the pack.
type Params struct {
	// FSAPIURL is the URL of Channels' /fsapi as FreeSWITCH reaches it,
	// e.g. http://127.0.0.1:8080/fsapi. No user:pass@ (FreeSWITCH's curl
	// API ignores it): credentials go in User and Password.
	FSAPIURL string
	// User and Password are /fsapi's basic credentials
	// (CHANNELS_FSAPI_USER, CHANNELS_FSAPI_PASSWORD); the Lua reports send
	// Password as their secret field.
	User, Password string
	// Domain is the Verto domain.
	Domain string
	// Timeout is mod_xml_curl's request timeout in seconds (default 3).
	Timeout int
	// EventSocketPort is the loopback event socket's port (default 8021).
	EventSocketPort int
	// EventSocketPassword is the event socket's password; empty: a random
	// one.
	EventSocketPassword string
	// LogLevel is FreeSWITCH's console and core log level (default "info").
	LogLevel string
}

// FromConfig takes the pack's values from the deployment's configuration:
// the /fsapi URL on the address Channels listens on (127.0.0.1 when it
// listens on all addresses), its credentials, the Verto domain and the log
// level. Set FSAPIURL yourself when FreeSWITCH reaches Channels another way.
func FromConfig(c config.Config) Params {
	host, port, err := net.SplitHostPort(c.Listen)
	if err != nil {
		host, port = "127.0.0.1", "8080"
	}
	if ip, err := netip.ParseAddr(host); host == "" || (err == nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	level := map[string]string{"debug": "debug", "info": "info", "warn": "warning", "error": "err"}[c.LogLevel]
	return Params{
		FSAPIURL: "http://" + net.JoinHostPort(host, port) + "/fsapi",
		User:     c.FSAPIUser,
		Password: c.FSAPIPassword,
		Domain:   c.VertoDomain(),
		LogLevel: level,
	}
}

// File is one file of the pack.
type File struct {
	Name string      // slash-separated path inside the configuration directory
	Mode fs.FileMode // 0o640 for files holding secrets, else 0o644
	Data []byte
}

// secretFile reports whether a file holds a password, so it is not for
// everyone to read.
func secretFile(name string) bool {
	switch name {
	case "autoload_configs/xml_curl.conf.xml", "autoload_configs/event_socket.conf.xml", "scripts/report.lua":
		return true
	}
	return false
}

// data is what the templates see: every value already a string.
type data struct {
	FSAPIURL, Credentials, Password, Domain, Timeout string
	EventSocketPort, EventSocketPassword, LogLevel   string
	HTTPS                                            bool
}

// Render returns the pack's files filled in with p, in a stable order.
func Render(p Params) ([]File, error) {
	d, err := p.data()
	if err != nil {
		return nil, err
	}
	var files []File
	err = fs.WalkDir(pack, "pack", func(name string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		text, err := pack.ReadFile(name)
		if err != nil {
			return err
		}
		rel := strings.TrimPrefix(name, "pack/")
		t, err := parseTemplate(rel, string(text))
		if err != nil {
			return err
		}
		var buf bytes.Buffer
		if err := t.Execute(&buf, d); err != nil {
			return fmt.Errorf("freeswitch pack: render %s: %w", rel, err)
		}
		mode := fs.FileMode(0o644)
		if secretFile(rel) {
			mode = 0o640
		}
		files = append(files, File{Name: rel, Mode: mode, Data: buf.Bytes()})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return files, nil
}

// Write renders the pack, adds a fresh placeholder certificate where
// verto.conf names it (vertoconf.PlaceholderCert: a profile with only a
// plain listener then starts cleanly), and writes them into dir (created
// if need be), replacing the pack's files and leaving any others alone.
func Write(dir string, p Params) error {
	files, err := Render(p)
	if err != nil {
		return err
	}
	cert, err := placeholderPEM(time.Now())
	if err != nil {
		return err
	}
	files = append(files, File{Name: vertoconf.PlaceholderCertFile, Mode: 0o640, Data: cert})
	for _, f := range files {
		name := filepath.Join(dir, filepath.FromSlash(f.Name))
		if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			return fmt.Errorf("freeswitch pack: %w", err)
		}
		if err := os.WriteFile(name, f.Data, f.Mode); err != nil {
			return fmt.Errorf("freeswitch pack: %w", err)
		}
		// WriteFile keeps the mode of an existing file; make it ours.
		if err := os.Chmod(name, f.Mode); err != nil {
			return fmt.Errorf("freeswitch pack: %w", err)
		}
	}
	return nil
}

// placeholderPEM returns a new self-signed certificate and its private key
// in one PEM file, the form of mod_verto's secure-combined. The key is made
// here, for this file alone, so a copy of the pack never shares it.
func placeholderPEM(now time.Time) ([]byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("freeswitch pack: placeholder key: %w", err)
	}
	tmpl := &x509.Certificate{
		// A nil serial number makes CreateCertificate choose a random one.
		Subject:     pkix.Name{CommonName: "Channels placeholder (serves no listener)"},
		NotBefore:   now.Add(-time.Hour),
		NotAfter:    now.AddDate(20, 0, 0),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("freeswitch pack: placeholder certificate: %w", err)
	}
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("freeswitch pack: placeholder key: %w", err)
	}
	var b bytes.Buffer
	_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	_ = pem.Encode(&b, &pem.Block{Type: "PRIVATE KEY", Bytes: pk})
	return b.Bytes(), nil
}

// data checks p and fills in defaults.
func (p Params) data() (data, error) {
	u, err := url.Parse(p.FSAPIURL)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return data{}, fmt.Errorf("freeswitch pack: /fsapi URL %q: want http(s)://host[:port]/fsapi", p.FSAPIURL)
	case u.User != nil:
		return data{}, fmt.Errorf("freeswitch pack: /fsapi URL %q: credentials belong in the user and password, not the URL", p.FSAPIURL)
	case strings.ContainsAny(p.FSAPIURL, " \t\r\n'\"\\"):
		// The curl API splits its arguments on spaces and honours quotes.
		return data{}, fmt.Errorf("freeswitch pack: /fsapi URL %q: no spaces, quotes or backslashes", p.FSAPIURL)
	}
	if p.User == "" || strings.Contains(p.User, ":") {
		return data{}, errors.New("freeswitch pack: the /fsapi user must be set and must not contain ':'")
	}
	if p.Password == "" {
		return data{}, errors.New("freeswitch pack: the /fsapi password must be set")
	}
	if !validDomain(p.Domain) {
		return data{}, fmt.Errorf("freeswitch pack: domain %q: want a host name", p.Domain)
	}
	if p.Timeout == 0 {
		p.Timeout = 3
	}
	if p.EventSocketPort == 0 {
		p.EventSocketPort = 8021
	}
	if p.LogLevel == "" {
		p.LogLevel = "info"
	}
	if p.Timeout < 0 || p.EventSocketPort < 0 || p.EventSocketPort > 65535 {
		return data{}, errors.New("freeswitch pack: timeout and event socket port must be positive")
	}
	switch p.LogLevel {
	case "debug", "info", "notice", "warning", "err", "crit", "alert":
	default:
		return data{}, fmt.Errorf("freeswitch pack: log level %q: want debug, info, notice, warning, err, crit or alert", p.LogLevel)
	}
	if p.EventSocketPassword == "" {
		var b [16]byte
		if _, err := rand.Read(b[:]); err != nil {
			return data{}, fmt.Errorf("freeswitch pack: event socket password: %w", err)
		}
		p.EventSocketPassword = hex.EncodeToString(b[:])
	}
	// FreeSWITCH expands $${var} and ${var} in its configuration files.
	for _, v := range []string{p.FSAPIURL, p.User, p.Password, p.EventSocketPassword} {
		if strings.Contains(v, "${") {
			return data{}, errors.New("freeswitch pack: values must not contain \"${\", which FreeSWITCH would expand")
		}
	}
	return data{
		FSAPIURL:            p.FSAPIURL,
		Credentials:         p.User + ":" + p.Password,
		Password:            p.Password,
		Domain:              p.Domain,
		Timeout:             strconv.Itoa(p.Timeout),
		EventSocketPort:     strconv.Itoa(p.EventSocketPort),
		EventSocketPassword: p.EventSocketPassword,
		LogLevel:            p.LogLevel,
		HTTPS:               u.Scheme == "https",
	}, nil
}

// validDomain accepts host names: letters, digits, '-' and '.'. The domain
// goes into vars.xml, which FreeSWITCH's pre-processor reads without XML
// unescaping, so nothing else may appear.
func validDomain(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// LuaQuote returns s as a Lua string literal that any Lua reads back as s:
// printable ASCII as is, except '"' and '\\', everything else as \ddd.
func LuaQuote(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c >= 0x7f:
			fmt.Fprintf(&b, "\\%03d", c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// parseTemplate parses one file of the pack. Every value a template prints
// must go through the escaper of its file type last: xml for XML files,
// lua for Lua scripts.
func parseTemplate(name, text string) (*template.Template, error) {
	esc := fsapi.EscapeFunc
	if path.Ext(name) == ".lua" {
		esc = "lua"
	}
	t, err := template.New(name).Option("missingkey=error").
		Funcs(template.FuncMap{fsapi.EscapeFunc: fsapi.Escape, "lua": LuaQuote}).Parse(text)
	if err != nil {
		return nil, fmt.Errorf("freeswitch pack: parse %s: %w", name, err)
	}
	for _, sub := range t.Templates() {
		if sub.Root == nil {
			continue
		}
		if err := checkEscaped(sub.Root, esc); err != nil {
			return nil, fmt.Errorf("freeswitch pack: %s: %w", name, err)
		}
	}
	return t, nil
}

func checkEscaped(n parse.Node, esc string) error {
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return nil
		}
		for _, c := range n.Nodes {
			if err := checkEscaped(c, esc); err != nil {
				return err
			}
		}
	case *parse.ActionNode:
		if len(n.Pipe.Decl) > 0 {
			return nil
		}
		last := n.Pipe.Cmds[len(n.Pipe.Cmds)-1]
		if id, ok := last.Args[0].(*parse.IdentifierNode); ok && id.Ident == esc {
			return nil
		}
		return fmt.Errorf("line %d: action %s does not end in %s", n.Line, n, esc)
	case *parse.IfNode:
		return checkBranch(&n.BranchNode, esc)
	case *parse.RangeNode:
		return checkBranch(&n.BranchNode, esc)
	case *parse.WithNode:
		return checkBranch(&n.BranchNode, esc)
	}
	return nil
}

func checkBranch(b *parse.BranchNode, esc string) error {
	if err := checkEscaped(b.List, esc); err != nil {
		return err
	}
	if b.ElseList != nil {
		return checkEscaped(b.ElseList, esc)
	}
	return nil
}
