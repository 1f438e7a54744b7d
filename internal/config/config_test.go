package config

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestLoadPrecedence(t *testing.T) {
	c, rest, err := Load("serve", []string{"-listen", "127.0.0.1:9999", "extra"}, env(map[string]string{
		"CHANNELS_LISTEN":           "127.0.0.1:7777",
		"CHANNELS_BASE_URL":         "https://calls.example.org",
		"CHANNELS_SESSION_LIFETIME": "2h",
		"CHANNELS_FSAPI_NETWORKS":   "10.0.0.0/8, 192.0.2.7",
		"CHANNELS_ICE_SERVERS":      "stun:stun.example.org:3478,u:p@turn:turn.example.org:3478",
		"CHANNELS_TRUSTED_PROXIES":  "127.0.0.1",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:9999" {
		t.Errorf("Listen = %q: flags must win over the environment", c.Listen)
	}
	if !reflect.DeepEqual(rest, []string{"extra"}) {
		t.Errorf("rest = %q", rest)
	}
	if !c.Secure() || c.VertoDomain() != "calls.example.org" {
		t.Errorf("Secure = %v, VertoDomain = %q", c.Secure(), c.VertoDomain())
	}
	if c.SessionLifetime != 2*time.Hour {
		t.Errorf("SessionLifetime = %v", c.SessionLifetime)
	}
	wantNets := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.7/32")}
	if !reflect.DeepEqual(c.FSAPINetworks, wantNets) {
		t.Errorf("FSAPINetworks = %v", c.FSAPINetworks)
	}
	if want := []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}; !reflect.DeepEqual(c.TrustedProxies, want) {
		t.Errorf("TrustedProxies = %v", c.TrustedProxies)
	}
	wantICE := []ICEServer{
		{URLs: []string{"stun:stun.example.org:3478"}},
		{URLs: []string{"turn:turn.example.org:3478"}, Username: "u", Credential: "p"},
	}
	if !reflect.DeepEqual(c.ICEServers, wantICE) {
		t.Errorf("ICEServers = %+v", c.ICEServers)
	}
}

func TestDefaults(t *testing.T) {
	c, _, err := Load("serve", nil, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.SessionLifetime != 14*24*time.Hour {
		t.Errorf("default session lifetime = %v, want 14 days", c.SessionLifetime)
	}
	if c.Database() != "data/channels.db" || c.Secure() || c.VertoDomain() != "localhost" {
		t.Errorf("Database = %q, Secure = %v, VertoDomain = %q", c.Database(), c.Secure(), c.VertoDomain())
	}
}

func TestLoadErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"bad base URL", []string{"-base-url", "ftp://x"}, nil, "base URL"},
		{"bad verto URL", []string{"-verto-url", "http://x/verto"}, nil, "verto URL"},
		{"bad duration in env", nil, map[string]string{"CHANNELS_SESSION_LIFETIME": "soon"}, "CHANNELS_SESSION_LIFETIME"},
		{"negative lifetime", []string{"-session-lifetime", "-1h"}, nil, "positive"},
		{"bad log format", []string{"-log-format", "xml"}, nil, "log format"},
		{"bad log level", []string{"-log-level", "loud"}, nil, "log level"},
		{"bad network", []string{"-fsapi-networks", "10.0.0.0/33"}, nil, "network"},
		{"bad proxy network", []string{"-trusted-proxies", "proxy.example"}, nil, "network"},
		{"bad ICE server", []string{"-ice-servers", "http://x"}, nil, "ICE server"},
		{"bad TURN credentials", []string{"-ice-servers", "user@turn:x"}, nil, "credentials"},
		{"negative client limit", []string{"-max-clients-per-channel", "-1"}, nil, "negative"},
		{"call of one", []string{"-max-call-size", "1"}, nil, "max call size 1: want 2 to 6"},
		{"call of seven", nil, map[string]string{"CHANNELS_MAX_CALL_SIZE": "7"}, "max call size 7: want 2 to 6"},
		{"call size not a number", nil, map[string]string{"CHANNELS_MAX_CALL_SIZE": "six"}, "CHANNELS_MAX_CALL_SIZE"},
		{"call size flag not a number", []string{"-max-call-size", "6.5"}, nil, "-max-call-size"},
		{"unknown flag", []string{"-nope"}, nil, "not defined"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := Load("serve", tc.args, env(tc.env))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

// TestFlagsMendEnvironment: a flag replaces a CHANNELS_* value that does not
// parse or validate; validation runs once, on the result.
func TestFlagsMendEnvironment(t *testing.T) {
	tests := []struct {
		name  string
		env   map[string]string
		args  []string
		check func(Config) bool
	}{
		{"base URL", map[string]string{"CHANNELS_BASE_URL": "bad"}, []string{"-base-url", "http://x:1"},
			func(c Config) bool { return c.BaseURL == "http://x:1" }},
		{"duration", map[string]string{"CHANNELS_SESSION_LIFETIME": "soon"}, []string{"-session-lifetime", "2h"},
			func(c Config) bool { return c.SessionLifetime == 2*time.Hour }},
		{"networks", map[string]string{"CHANNELS_FSAPI_NETWORKS": "nope"}, []string{"-fsapi-networks", "10.0.0.0/8"},
			func(c Config) bool { return len(c.FSAPINetworks) == 1 && c.FSAPINetworks[0].String() == "10.0.0.0/8" }},
		{"ICE servers", map[string]string{"CHANNELS_ICE_SERVERS": "http://x"}, []string{"-ice-servers", "stun:s:3478"},
			func(c Config) bool { return len(c.ICEServers) == 1 && c.ICEServers[0].URLs[0] == "stun:s:3478" }},
		{"log level", map[string]string{"CHANNELS_LOG_LEVEL": "loud"}, []string{"-log-level", "debug"},
			func(c Config) bool { return c.LogLevel == "debug" }},
		{"call size", map[string]string{"CHANNELS_MAX_CALL_SIZE": "9"}, []string{"-max-call-size", "4"},
			func(c Config) bool { return c.MaxCallSize == 4 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _, err := Load("serve", tt.args, env(tt.env))
			if err != nil || !tt.check(c) {
				t.Fatalf("Load = %+v, %v", c, err)
			}
			if _, _, err := Load("serve", nil, env(tt.env)); err == nil {
				t.Fatal("the bad environment alone was accepted")
			}
		})
	}
}

func TestLoaderHelpShowsEnvironment(t *testing.T) {
	l := NewLoader("serve", env(map[string]string{"CHANNELS_LISTEN": "127.0.0.1:7777"}))
	if got := l.FlagSet.Lookup("listen").DefValue; got != "127.0.0.1:7777" {
		t.Errorf("-listen default %q, want the environment's", got)
	}
	if EnvName("max-clients-per-channel") != "CHANNELS_MAX_CLIENTS_PER_CHANNEL" {
		t.Error(EnvName("max-clients-per-channel"))
	}
}
