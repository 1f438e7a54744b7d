package config

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"
)

const testTURNSecret = "0123456789abcdef-test-secret"

func TestTURNSettings(t *testing.T) {
	c, _, err := Load("serve", []string{"-turn-ttl", "2h", "-ice-relay-only"}, env(map[string]string{
		"CHANNELS_TURN_SECRET": testTURNSecret,
		"CHANNELS_TURN_URLS":   "turn:turn.example.org:3478?transport=udp, turns:turn.example.org:5349",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.TURNSecret != testTURNSecret || c.TURNTTL != 2*time.Hour || !c.ICERelayOnly {
		t.Errorf("secret set %v, ttl %v, relay only %v", c.TURNSecret == testTURNSecret, c.TURNTTL, c.ICERelayOnly)
	}
	want := []string{"turn:turn.example.org:3478?transport=udp", "turns:turn.example.org:5349"}
	if !reflect.DeepEqual(c.TURNURLs, want) {
		t.Errorf("TURNURLs = %q, want %q", c.TURNURLs, want)
	}
	d, _, err := Load("serve", nil, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if d.TURNTTL != 24*time.Hour || d.ICERelayOnly || d.TURNSecret != "" {
		t.Errorf("defaults: ttl %v, relay only %v, secret set %v", d.TURNTTL, d.ICERelayOnly, d.TURNSecret != "")
	}
}

func TestTURNErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"secret without URLs", []string{"-turn-secret", testTURNSecret}, "without TURN URLs"},
		{"URLs without secret", []string{"-turn-urls", "turn:t.example.org"}, "without a TURN secret"},
		{"short secret", []string{"-turn-secret", "short", "-turn-urls", "turn:t.example.org"}, "too short"},
		{"stun URL", []string{"-turn-secret", testTURNSecret, "-turn-urls", "stun:t.example.org"}, "TURN URL"},
		{"credentials in URL", []string{"-turn-secret", testTURNSecret, "-turn-urls", "u:p@turn:t.example.org"}, "TURN URL"},
		{"tiny lifetime", []string{"-turn-secret", testTURNSecret, "-turn-urls", "turn:t.example.org", "-turn-ttl", "30s"}, "lifetime"},
		{"negative lifetime", []string{"-turn-secret", testTURNSecret, "-turn-urls", "turn:t.example.org", "-turn-ttl", "-1h"}, "lifetime"},
		{"relay only without TURN", []string{"-ice-relay-only"}, "relay-only"},
		{"relay only with STUN alone", []string{"-ice-relay-only", "-ice-servers", "stun:s.example.org"}, "relay-only"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := Load("serve", tc.args, env(nil))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
			if strings.Contains(err.Error(), testTURNSecret) || strings.Contains(err.Error(), "short,") {
				t.Errorf("error %q shows the secret", err)
			}
		})
	}
	// Relay only works with a static TURN server too.
	if _, _, err := Load("serve", []string{"-ice-relay-only", "-ice-servers", "u:p@turn:t.example.org:3478"}, env(nil)); err != nil {
		t.Errorf("relay only with a static TURN server: %v", err)
	}
}

// The secret, given in the environment, is not printed by -help.
func TestTURNSecretNotInHelp(t *testing.T) {
	l := NewLoader("serve", env(map[string]string{"CHANNELS_TURN_SECRET": testTURNSecret}))
	var out bytes.Buffer
	l.FlagSet.SetOutput(&out)
	l.FlagSet.PrintDefaults()
	if !strings.Contains(out.String(), "-turn-secret") {
		t.Fatalf("-help does not list -turn-secret:\n%s", out.String())
	}
	if strings.Contains(out.String(), testTURNSecret) {
		t.Errorf("-help shows the TURN secret:\n%s", out.String())
	}
}
