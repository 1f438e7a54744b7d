package metrics_test

import (
	"testing"

	"channels/internal/metrics"
	"channels/internal/metrics/metricstest"
)

// TestModeration: every action and refusal series is there at zero from
// the start, each hook counts its own, values outside the sets count as
// other, and nil hooks do nothing.
func TestModeration(t *testing.T) {
	var none *metrics.Metrics
	none.Moderation().Action(metrics.ModRemove)
	none.Moderation().Refused(metrics.RefusedPage, metrics.RefusedRemoved)

	m := metrics.New()
	before := scrape(t, m)
	for _, a := range []string{"remove", "unremove", "lock", "unlock"} {
		if !before.Has("channels_moderation_actions_total", "action", a) {
			t.Errorf("action %s has no series at 0", a)
		}
	}
	for _, where := range []string{"page", "login"} {
		for _, why := range []string{"removed", "locked"} {
			if !before.Has("channels_moderation_refusals_total", "where", where, "why", why) {
				t.Errorf("refusal %s/%s has no series at 0", where, why)
			}
		}
	}
	mod := m.Moderation()
	mod.Action(metrics.ModRemove)
	mod.Action(metrics.ModRemove)
	mod.Action(metrics.ModLock)
	mod.Action("made up")
	mod.Refused(metrics.RefusedPage, metrics.RefusedRemoved)
	mod.Refused(metrics.RefusedLogin, metrics.RefusedLocked)
	mod.Refused("made up", metrics.RefusedLocked)
	after := scrape(t, m)
	for _, tt := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"channels_moderation_actions_total", []string{"action", "remove"}, 2},
		{"channels_moderation_actions_total", []string{"action", "lock"}, 1},
		{"channels_moderation_actions_total", []string{"action", "unlock"}, 0},
		{"channels_moderation_actions_total", []string{"action", "other"}, 1},
		{"channels_moderation_refusals_total", []string{"where", "page", "why", "removed"}, 1},
		{"channels_moderation_refusals_total", []string{"where", "login", "why", "locked"}, 1},
		{"channels_moderation_refusals_total", []string{"where", "page", "why", "locked"}, 0},
		{"channels_moderation_refusals_total", []string{"where", "other", "why", "other"}, 1},
	} {
		if got := metricstest.Delta(before, after, tt.name, tt.labels...); got != tt.want {
			t.Errorf("%s%v moved by %v, want %v", tt.name, tt.labels, got, tt.want)
		}
	}
}
