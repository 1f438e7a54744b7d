package config

import (
	"strings"
	"testing"
	"time"
)

func TestClusterSettings(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		url     string
		prefix  string
		wantErr string
	}{
		{name: "default: no cluster", prefix: "channels"},
		{name: "env", env: map[string]string{"CHANNELS_CLUSTER_URL": "nats://127.0.0.1:4222"}, url: "nats://127.0.0.1:4222", prefix: "channels"},
		{name: "flag wins", env: map[string]string{"CHANNELS_CLUSTER_URL": "nats://a:4222"}, args: []string{"-cluster-url", "tls://b:4222", "-cluster-prefix", "site-1.eu"}, url: "tls://b:4222", prefix: "site-1.eu"},
		{name: "credentials and a list", args: []string{"-cluster-url", "nats://u:p@a:4222, nats://u:p@b:4222"}, url: "nats://u:p@a:4222, nats://u:p@b:4222", prefix: "channels"},
		{name: "websocket", args: []string{"-cluster-url", "wss://nats.example:443"}, url: "wss://nats.example:443", prefix: "channels"},
		{name: "no host", args: []string{"-cluster-url", "nats://"}, wantErr: "cluster URL"},
		{name: "http", args: []string{"-cluster-url", "http://secret:pw@a:4222"}, wantErr: "scheme"},
		{name: "wildcard prefix", args: []string{"-cluster-prefix", "a.*"}, wantErr: "cluster prefix"},
		{name: "empty token", args: []string{"-cluster-prefix", "a..b"}, wantErr: "cluster prefix"},
		{name: "space", args: []string{"-cluster-prefix", "a b"}, wantErr: "cluster prefix"},
		{name: "hub bytes below a frame", args: []string{"-hub-bytes-per-address", "63"}, wantErr: "hub bytes per address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _, err := Load("channels", tt.args, func(k string) string { return tt.env[k] })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "pw") {
					t.Errorf("the error shows the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.ClusterURL != tt.url || c.ClusterPrefix != tt.prefix {
				t.Errorf("got %q %q, want %q %q", c.ClusterURL, c.ClusterPrefix, tt.url, tt.prefix)
			}
		})
	}
}

func TestPoolAndExpirySettings(t *testing.T) {
	c, _, err := Load("channels", nil, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if c.DatabasePool != DefaultDatabasePool || c.ClusterExpiry != DefaultClusterExpiry {
		t.Errorf("defaults: pool %d, expiry %v", c.DatabasePool, c.ClusterExpiry)
	}
	env := map[string]string{"CHANNELS_DATABASE_POOL": "6", "CHANNELS_CLUSTER_EXPIRY": "30s"}
	c, _, err = Load("channels", nil, func(k string) string { return env[k] })
	if err != nil || c.DatabasePool != 6 || c.ClusterExpiry != 30*time.Second {
		t.Errorf("from the environment: pool %d, expiry %v, %v", c.DatabasePool, c.ClusterExpiry, err)
	}
	for _, args := range [][]string{{"-database-pool", "0"}, {"-cluster-expiry", "1s"}} {
		if _, _, err := Load("channels", args, func(string) string { return "" }); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}
