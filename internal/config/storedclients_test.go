package config

import (
	"strings"
	"testing"
)

// TestMaxStoredClients: the ceiling on stored clients comes from the flag
// or the environment, defaults to DefaultMaxStoredClients, and must be at
// least 1 (there is no "off": a server that stores whatever strangers ask
// for is what it exists to prevent).
func TestMaxStoredClients(t *testing.T) {
	tests := []intCase{
		{"default", nil, nil, DefaultMaxStoredClients, ""},
		{"environment", map[string]string{"CHANNELS_MAX_STORED_CLIENTS": "1000000"}, nil, 1_000_000, ""},
		{"flag wins", map[string]string{"CHANNELS_MAX_STORED_CLIENTS": "1000000"}, []string{"-max-stored-clients", "3"}, 3, ""},
		{"one", nil, []string{"-max-stored-clients", "1"}, 1, ""},
		{"zero", nil, []string{"-max-stored-clients", "0"}, 0, "max stored clients 0: want at least 1"},
		{"negative", map[string]string{"CHANNELS_MAX_STORED_CLIENTS": "-5"}, nil, 0, "max stored clients -5: want at least 1"},
		{"not a number", map[string]string{"CHANNELS_MAX_STORED_CLIENTS": "many"}, nil, 0, "CHANNELS_MAX_STORED_CLIENTS"},
	}
	testIntSetting(t, tests, func(c Config) int { return c.MaxStoredClients })
	if DefaultMaxStoredClients != 250_000 || Default().MaxStoredClients != DefaultMaxStoredClients {
		t.Errorf("default %d (Default() has %d), want 250,000 as docs/OPERATIONS.md says", DefaultMaxStoredClients, Default().MaxStoredClients)
	}
}

// intCase is one way of giving an integer setting (environment, flags)
// and what Load makes of it: the value, or an error that mentions wantErr.
type intCase struct {
	name    string
	env     map[string]string
	args    []string
	want    int
	wantErr string
}

// testIntSetting runs Load on each case and checks the setting get reads.
func testIntSetting(t *testing.T, tests []intCase, get func(Config) int) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, _, err := Load("serve", tt.args, env(tt.env))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to mention %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := get(cfg); got != tt.want {
				t.Errorf("got %d, want %d", got, tt.want)
			}
		})
	}
}
