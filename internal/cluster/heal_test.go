package cluster_test

import (
	"encoding/base64"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"channels/internal/cluster/clustertest"
)

// announcement is what the browser client broadcasts to say it is there
// (controller.js): base64 of {t: "available", …}.
func announcement(name string) string {
	return base64.StdEncoding.EncodeToString(fmt.Appendf(nil, `{"t":"available","name":%q,"key":"","inst":"i-%s","hello":true}`, name, name))
}

// presence follows, as the browser client does, who a client was told is
// in its channel: an announcement adds its sender, a leave removes it.
type presence map[string]bool

func (p presence) take(f map[string]any) {
	if f["method"] != "verto.event" {
		return
	}
	who, _ := params(f)["userid"].(string)
	switch data, _ := params(f)["eventData"].(string); {
	case data == leaveData:
		delete(p, who)
	case strings.HasPrefix(data, "eyJ0Ijoi"): // {"t":"
		p[who] = true
	}
}

// TestClusterWrongDeath: a process that stops for longer than the expiry
// (SIGSTOP: a stalled machine) is taken for dead, then heard again. Within
// 2 s of that its member is back for everyone: the browsers elsewhere get
// its announcement again after the leave they were given, its connected
// time is restored in the database, messages reach it; and the stalled
// process itself takes nobody for dead.
func TestClusterWrongDeath(t *testing.T) {
	const expiry = 2 * time.Second
	s := newSite(t, clustertest.NATS(t), "CHANNELS_CLUSTER_EXPIRY="+expiry.String())
	nodes := s.start(3)
	ch := s.channel()
	var cs []*client
	var ms []member
	views := []presence{{}, {}, {}}
	for i, n := range nodes {
		m := s.member(ch)
		c := dialNode(t, n, fmt.Sprint("c", i))
		c.join(m, "s")
		cs, ms = append(cs, c), append(ms, m)
	}
	uid := func(i int) string { return ms[i].id + "@" + domain }
	for i, c := range cs {
		if r := c.broadcast(ch, announcement(fmt.Sprint("c", i))); errorCode(r) != "" {
			t.Fatalf("announce: %v", r)
		}
	}
	// Everyone sees everyone (and the connected times are in).
	seen := func(i, j int) func(map[string]any) bool {
		return func(f map[string]any) bool {
			views[i].take(f)
			return f["method"] == "verto.event" && params(f)["userid"] == uid(j) && params(f)["eventData"] != leaveData
		}
	}
	for i, c := range cs {
		c.waitFor(5*time.Second, "the others' announcements", func(f map[string]any) bool {
			views[i].take(f)
			return len(views[i]) == len(cs)-1
		})
	}
	connected := func(i int) bool {
		cl, err := s.st.ClientByID(t.Context(), ms[i].id)
		if err != nil {
			t.Fatal(err)
		}
		return !cl.Connected.IsZero()
	}
	poll(t, "connected time", 5*time.Second, func() bool { return connected(2) })

	// Process 3 stalls: the others take it for dead, tell their browsers
	// its member left and clear its connected time.
	if err := nodes[2].cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nodes[2].cmd.Process.Signal(syscall.SIGCONT) })
	for i, c := range cs[:2] {
		c.waitFor(expiry+5*time.Second, "leave of the stalled process's member", func(f map[string]any) bool {
			views[i].take(f)
			return f["method"] == "verto.event" && params(f)["userid"] == uid(2) && params(f)["eventData"] == leaveData
		})
		if views[i][uid(2)] {
			t.Fatalf("c%d still lists the member of the process taken for dead", i)
		}
	}
	poll(t, "cleared connected time", 5*time.Second, func() bool { return !connected(2) })

	// It is heard again: within 2 s its member is back everywhere.
	resumed := time.Now()
	if err := nodes[2].cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	for i, c := range cs[:2] {
		c.waitFor(5*time.Second, "the member's announcement again", seen(i, 2))
		t.Logf("c%d lists the member again %v after the process resumed", i, time.Since(resumed).Round(time.Millisecond))
	}
	poll(t, "connected time restored", 5*time.Second, func() bool { return connected(2) })
	healed := time.Since(resumed)
	t.Logf("healed %v after the process resumed", healed.Round(time.Millisecond))
	if healed > 2*time.Second {
		t.Errorf("healing took %v, want at most 2 s", healed)
	}
	// The stalled process knew it had stalled, so it took nobody for dead.
	if !strings.Contains(nodes[2].logs.String(), "this process stalled") {
		t.Errorf("the stalled process did not notice:\n%s", nodes[2].logs)
	}
	if v, err := nodes[2].metric("channels_cluster_peers_dead_total"); err != nil || v != 0 {
		t.Errorf("the stalled process took %v peers for dead (%v)", v, err)
	}
	// Messages flow both ways, and every browser ends with everyone
	// listed: no leave left standing.
	for i, c := range cs {
		for j, to := range cs {
			if i != j {
				c.call("verto.info", map[string]any{"msg": map[string]any{"to": ms[j].id, "body": fmt.Sprint("from ", i)}})
				to.waitFor(5*time.Second, "message", func(f map[string]any) bool {
					views[j].take(f)
					return isMessage(fmt.Sprint("from ", i))(f)
				})
			}
		}
	}
	for i := range cs {
		for j := range cs {
			if i != j && !views[i][uid(j)] {
				t.Errorf("c%d does not list c%d at the end", i, j)
			}
		}
	}
}
