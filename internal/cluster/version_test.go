package cluster_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"channels/internal/cluster"
	"channels/internal/cluster/clustertest"
)

// eventLocal records the events a node hands its hub.
type eventLocal struct {
	quietLocal
	mu     sync.Mutex
	events []string
}

func (l *eventLocal) Event(sender, _ string, params []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, sender+" "+string(params))
}

func (l *eventLocal) has(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.events {
		if strings.Contains(e, s) {
			return true
		}
	}
	return false
}

// TestWireVersions: what an old node (it reads wire version 1 only) and a
// new one (versions 1 and 2) do with each other's messages during a
// rolling upgrade. The new one speaks version 1 while the old one is
// alive, so each reads everything the other sends; a message in a
// version a node does not read (version 2 at the old one, or one from a
// release before versions existed) is dropped, counted and logged once
// per version, never silently; the new one reads both versions. Once the
// old one has left, the new ones speak version 2, but not before the old
// one's departure is an expiry old (it may come back), nor before each
// has been up for an expiry (a live peer it has not heard yet may be
// old).
func TestWireVersions(t *testing.T) {
	url := clustertest.NATS(t)
	prefix := clustertest.Prefix("wire")
	var oldLogs syncBuffer
	const expiry = 2 * time.Second
	start := func(vmin, vmax byte, logs *syncBuffer) (*cluster.Node, *eventLocal) {
		opts := cluster.Options{URL: url, Prefix: prefix, Heartbeat: 100 * time.Millisecond, Expiry: expiry}
		if logs != nil {
			opts.Logger = slog.New(slog.NewTextHandler(logs, nil))
		}
		n, err := cluster.NewWithVersions(opts, vmin, vmax)
		if err != nil {
			t.Fatal(err)
		}
		l := &eventLocal{}
		n.Start(l)
		t.Cleanup(func() { _ = n.Close(context.Background()) })
		n.Subscribed("room")
		if err := n.Ready(t.Context()); err != nil {
			t.Fatal(err)
		}
		return n, l
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		poll(t, what, 5*time.Second, ok)
	}
	oldNode, oldHub := start(1, 1, &oldLogs)
	newNode, newHub := start(1, 2, nil)
	if v := newNode.Speaks(); v != 1 {
		t.Fatalf("a new node that knows no peer speaks version %d, want its oldest, 1", v)
	}
	waitFor("each node to know the other", func() bool { return oldNode.Stats().Nodes == 1 && newNode.Stats().Nodes == 1 })
	if v := newNode.Speaks(); v != 1 {
		t.Fatalf("beside an old node the new one speaks version %d, want 1", v)
	}

	// Each reads what the other sends.
	newNode.Broadcast("n@d", "room", []byte(`{"eventData":"from the new node"}`))
	oldNode.Broadcast("o@d", "room", []byte(`{"eventData":"from the old node"}`))
	waitFor("the old node to read the new one's broadcast", func() bool { return oldHub.has("from the new node") })
	waitFor("the new node to read the old one's broadcast", func() bool { return newHub.has("from the old node") })

	// Messages the old node cannot read: dropped, counted, logged once per
	// version.
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	v2 := cluster.Encode(2, cluster.KindEvent, "x@d", "room", []byte(`{"eventData":"version 2"}`))
	legacy := append([]byte{cluster.KindEvent}, cluster.Encode(1, cluster.KindEvent, "x@d", "room", []byte(`{"eventData":"unversioned"}`))[2:]...)
	for _, m := range [][]byte{v2, v2, legacy} {
		if err := nc.Publish(prefix+".ev.uroom", m); err != nil {
			t.Fatal(err)
		}
	}
	// A marker in version 1 closes the window: the three came before it.
	if err := nc.Publish(prefix+".ev.uroom", cluster.Encode(1, cluster.KindEvent, "x@d", "room", []byte(`{"eventData":"marker"}`))); err != nil {
		t.Fatal(err)
	}
	waitFor("the marker at both nodes", func() bool { return oldHub.has(`"marker"`) && newHub.has(`"marker"`) })
	if oldHub.has("version 2") || oldHub.has("unversioned") {
		t.Errorf("the old node took a message it cannot read: %v", oldHub.events)
	}
	if got := oldNode.Stats().Unreadable; got != 3 {
		t.Errorf("the old node counted %d unreadable messages, want 3", got)
	}
	logs := oldLogs.String()
	if n := strings.Count(logs, "wire version 2"); n != 1 {
		t.Errorf("version 2 logged %d times, want once:\n%s", n, logs)
	}
	if n := strings.Count(logs, "no wire version"); n != 1 {
		t.Errorf("unversioned messages logged %d times, want once:\n%s", n, logs)
	}
	// The new node reads version 2 (and drops the unversioned one).
	if !newHub.has("version 2") || newHub.has("unversioned") || newNode.Stats().Unreadable != 1 {
		t.Errorf("the new node: events %v, %d unreadable", newHub.events, newNode.Stats().Unreadable)
	}

	// The old node leaves, and a new one comes: both new ones speak
	// version 2, an expiry after the old one left and the third started.
	bye := time.Now()
	if err := oldNode.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor("the new node alone, speaking its oldest version", func() bool { return newNode.Stats().Nodes == 0 && newNode.Speaks() == 1 })
	started := time.Now()
	third, thirdHub := start(1, 2, nil)
	waitFor("the new nodes to know each other", func() bool { return third.Stats().Nodes == 1 && newNode.Stats().Nodes == 1 })
	newSpeaks, thirdSpeaks := newNode.Speaks(), third.Speaks()
	if time.Since(bye) < expiry*3/4 { // else too slow a machine to tell
		if newSpeaks != 1 {
			t.Errorf("%v after an old peer left, beside a new one, a node speaks version %d, want 1", time.Since(bye), newSpeaks)
		}
		if thirdSpeaks != 1 {
			t.Errorf("%v after its start, beside a new peer, a node speaks version %d, want 1", time.Since(started), thirdSpeaks)
		}
	} else {
		t.Logf("the checks within an expiry skipped: %v passed", time.Since(bye))
	}
	waitFor("the new nodes to speak version 2", func() bool { return third.Speaks() == 2 && newNode.Speaks() == 2 })
	if since := time.Since(started); since < expiry {
		t.Errorf("the third node spoke version 2 %v after its start, within an expiry", since)
	}
	newNode.Broadcast("n@d", "room", []byte(`{"eventData":"in version 2"}`))
	waitFor("a version 2 broadcast between new nodes", func() bool { return thirdHub.has("in version 2") })
}
