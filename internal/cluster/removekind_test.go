package cluster

import (
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// removeLocal hands on the removals a node gives its hub, and its
// unremoves as "unremove " and the uid.
type removeLocal struct {
	fuzzLocal
	removed chan string
}

func (l removeLocal) Remove(uid string)   { l.removed <- uid }
func (l removeLocal) Unremove(uid string) { l.removed <- "unremove " + uid }

// TestRemoveKind: a removal or an unremove from another node reaches the
// hub, in order; one that claims to come from this node, or names nobody,
// or is cut short, does not; and a kind a node does not know (as
// kindRemove and kindUnremove are to a node of an earlier release of wire
// version 1) is dropped without a trace: not counted as unreadable,
// nothing handed to the hub.
func TestRemoveKind(t *testing.T) {
	n, err := New(Options{URL: "nats://127.0.0.1:1", Prefix: "rk", Heartbeat: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer n.nc.Close()
	msg := func(kind byte, fields ...string) *nats.Msg {
		e := newEnc(wireMax, kind, 0)
		for _, f := range fields {
			e.str(f)
		}
		return &nats.Msg{Subject: "rk.nodes", Data: e.b}
	}
	cut := msg(kindRemove, "peer", "u@d")
	cut.Data = cut.Data[:len(cut.Data)-1]
	cutUnremove := msg(kindUnremove, "peer", "u@d")
	cutUnremove.Data = cutUnremove.Data[:len(cutUnremove.Data)-1]
	tests := []struct {
		name string
		msg  *nats.Msg
		want []string
	}{
		{"from a peer", msg(kindRemove, "peer", "u@d"), []string{"u@d"}},
		{"from this node", msg(kindRemove, n.id, "u@d"), nil},
		{"nobody", msg(kindRemove, "peer", ""), nil},
		{"cut short", cut, nil},
		{"a kind this node does not know", msg('Z', "peer", "u@d"), nil},
		{"unremove from a peer", msg(kindUnremove, "peer", "u@d"), []string{"unremove u@d"}},
		{"unremove from this node", msg(kindUnremove, n.id, "u@d"), nil},
		{"unremove of nobody", msg(kindUnremove, "peer", ""), nil},
		{"unremove cut short", cutUnremove, nil},
	}
	l := removeLocal{removed: make(chan string, 16)}
	n.local = l
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n.onNodes(tc.msg)
			// Removals reach the hub in order, off the handler: a marker
			// after the message closes the window.
			n.onNodes(msg(kindRemove, "peer", "marker@d"))
			var got []string
			for done := false; !done; {
				select {
				case uid := <-l.removed:
					if done = uid == "marker@d"; !done {
						got = append(got, uid)
					}
				case <-time.After(5 * time.Second):
					t.Fatalf("the marker did not reach the hub; got %q", got)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("hub told to remove %q, want %q", got, tc.want)
			}
		})
	}
	if u := n.Stats().Unreadable; u != 0 {
		t.Errorf("%d messages counted unreadable", u)
	}
}
