package config

import "testing"

// TestMetricsListen: the metrics listener comes from the flag or the
// environment, needs host:port, and may not be the public listener.
func TestMetricsListen(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		want    string
		wantErr bool
	}{
		{"off by default", nil, nil, "", false},
		{"environment", map[string]string{"CHANNELS_METRICS_LISTEN": "127.0.0.1:9090"}, nil, "127.0.0.1:9090", false},
		{"flag wins", map[string]string{"CHANNELS_METRICS_LISTEN": "127.0.0.1:9090"}, []string{"-metrics-listen", "10.0.0.1:9100"}, "10.0.0.1:9100", false},
		{"no port", nil, []string{"-metrics-listen", "127.0.0.1"}, "", true},
		{"the public address", nil, []string{"-listen", "127.0.0.1:8080", "-metrics-listen", "127.0.0.1:8080"}, "", true},
		{"two ephemeral ports", nil, []string{"-listen", "127.0.0.1:0", "-metrics-listen", "127.0.0.1:0"}, "127.0.0.1:0", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, _, err := Load("test", tt.args, func(k string) string { return tt.env[k] })
			if (err != nil) != tt.wantErr {
				t.Fatalf("err %v, want error %v", err, tt.wantErr)
			}
			if err == nil && cfg.MetricsListen != tt.want {
				t.Errorf("MetricsListen %q, want %q", cfg.MetricsListen, tt.want)
			}
		})
	}
}
