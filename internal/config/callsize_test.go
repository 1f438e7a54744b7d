package config

import "testing"

// TestMaxCallSize: the most people in one call comes from the flag or the
// environment, defaults to DefaultMaxCallSize (6), and must be 2 to 6:
// each browser sends its video to every other, and the browser client is
// built for calls of at most 6.
func TestMaxCallSize(t *testing.T) {
	tests := []intCase{
		{"default", nil, nil, 6, ""},
		{"environment", map[string]string{"CHANNELS_MAX_CALL_SIZE": "4"}, nil, 4, ""},
		{"flag wins", map[string]string{"CHANNELS_MAX_CALL_SIZE": "4"}, []string{"-max-call-size", "3"}, 3, ""},
		{"two", nil, []string{"-max-call-size", "2"}, 2, ""},
		{"six", nil, []string{"-max-call-size", "6"}, 6, ""},
		{"one", nil, []string{"-max-call-size", "1"}, 0, "max call size 1: want 2 to 6"},
		{"zero", map[string]string{"CHANNELS_MAX_CALL_SIZE": "0"}, nil, 0, "max call size 0: want 2 to 6"},
		{"negative", nil, []string{"-max-call-size", "-3"}, 0, "max call size -3: want 2 to 6"},
		{"seven", nil, []string{"-max-call-size", "7"}, 0, "max call size 7: want 2 to 6"},
		{"seven in env", map[string]string{"CHANNELS_MAX_CALL_SIZE": "7"}, nil, 0, "max call size 7: want 2 to 6"},
		{"not a number", map[string]string{"CHANNELS_MAX_CALL_SIZE": "six"}, nil, 0, "CHANNELS_MAX_CALL_SIZE"},
		{"flag not a number", nil, []string{"-max-call-size", "many"}, 0, "-max-call-size"},
	}
	testIntSetting(t, tests, func(c Config) int { return c.MaxCallSize })
	if DefaultMaxCallSize != 6 || Default().MaxCallSize != DefaultMaxCallSize {
		t.Errorf("default %d (Default() has %d), want 6 as README.md says", DefaultMaxCallSize, Default().MaxCallSize)
	}
	if EnvName("max-call-size") != "CHANNELS_MAX_CALL_SIZE" {
		t.Error(EnvName("max-call-size"))
	}
}
