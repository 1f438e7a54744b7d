package cluster

import (
	"slices"
	"testing"

	"channels/internal/hub"
)

func TestLatestPerUser(t *testing.T) {
	m := func(uid string, conns int) hub.Member { return hub.Member{UID: uid, Conns: conns} }
	for _, c := range []struct {
		name     string
		in, want []hub.Member
	}{
		{"none", nil, nil},
		{"one", []hub.Member{m("a", 1)}, []hub.Member{m("a", 1)}},
		{"distinct users keep their order", []hub.Member{m("a", 1), m("b", 1), m("c", 2)}, []hub.Member{m("a", 1), m("b", 1), m("c", 2)}},
		{"join then leave", []hub.Member{m("a", 1), m("a", 0)}, []hub.Member{m("a", 0)}},
		{"the last of each, in the order of the lasts", []hub.Member{m("a", 1), m("b", 1), m("a", 2), m("c", 1), m("b", 0)}, []hub.Member{m("a", 2), m("c", 1), m("b", 0)}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := latestPerUser(slices.Clone(c.in))
			if !slices.EqualFunc(got, c.want, func(x, y hub.Member) bool { return x.UID == y.UID && x.Conns == y.Conns }) {
				t.Errorf("latestPerUser(%v) = %v, want %v", c.in, got, c.want)
			}
		})
	}
}
