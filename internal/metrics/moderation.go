package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// What a channel's manager did (channels_moderation_actions_total's
// action).
const (
	ModRemove   = "remove"
	ModUnremove = "unremove"
	ModLock     = "lock"
	ModUnlock   = "unlock"
)

// Where moderation refused someone, and why
// (channels_moderation_refusals_total's where and why).
const (
	RefusedPage    = "page"  // the channel page (403)
	RefusedLogin   = "login" // the directory login (hub and FreeSWITCH)
	RefusedRemoved = "removed"
	RefusedLocked  = "locked"
)

// Moderation holds the metrics of channel moderation: the web app counts
// the actions and the page refusals, the directory the login refusals.
type Moderation struct {
	actions  counters
	refusals map[[2]string]prometheus.Counter
}

func newModeration(f promauto.Factory) *Moderation {
	refusals := f.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "moderation", Name: "refusals_total",
		Help: "Channel pages (403) and directory logins refused because the client was removed or the channel is locked, by where and why.",
	}, []string{"where", "why"})
	m := &Moderation{
		actions: newCounters(f.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "moderation", Name: "actions_total",
			Help: "Moderation actions of channel managers, by action.",
		}, []string{"action"}), ModRemove, ModUnremove, ModLock, ModUnlock),
		refusals: map[[2]string]prometheus.Counter{},
	}
	for _, where := range []string{RefusedPage, RefusedLogin} {
		for _, why := range []string{RefusedRemoved, RefusedLocked} {
			m.refusals[[2]string{where, why}] = refusals.WithLabelValues(where, why)
		}
	}
	m.refusals[[2]string{Other, Other}] = refusals.WithLabelValues(Other, Other)
	return m
}

// Action counts a moderation action (one of the Mod* names).
func (m *Moderation) Action(action string) {
	if m != nil {
		m.actions.inc(action)
	}
}

// Refused counts a refusal where (RefusedPage, RefusedLogin) for why
// (RefusedRemoved, RefusedLocked); anything else counts as other, other.
func (m *Moderation) Refused(where, why string) {
	if m == nil {
		return
	}
	c, ok := m.refusals[[2]string{where, why}]
	if !ok {
		c = m.refusals[[2]string{Other, Other}]
	}
	c.Inc()
}
