package cluster_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"channels/internal/cluster"
	"channels/internal/cluster/clustertest"
)

// natsServer runs a private nats-server on addr, so the test can stop and
// restart it without disturbing anyone else's.
type natsServer struct {
	t    *testing.T
	addr string
	dir  string   // JetStream's store; "": no JetStream
	args []string // more flags, e.g. --user and --pass
	cmd  *exec.Cmd
}

func (s *natsServer) start() {
	s.t.Helper()
	host, port, _ := net.SplitHostPort(s.addr)
	args := []string{"-a", host, "-p", port}
	if s.dir != "" { // JetStream, kept there
		args = append(args, "-js", "-sd", s.dir)
	}
	s.cmd = exec.Command(natsServerBinary(s.t), append(args, s.args...)...)
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		if c, err := net.Dial("tcp", s.addr); err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatal("nats-server did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *natsServer) kill() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
		s.cmd = nil
	}
}

func natsServerBinary(t *testing.T) string {
	for _, p := range []string{"nats-server", "/usr/sbin/nats-server", "/usr/bin/nats-server"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if ciSet() {
		t.Fatal("nats-server is required in CI (Debian package nats-server)")
	}
	t.Skip("nats-server not installed")
	return ""
}

// TestClusterNATSOutage: processes started before NATS serve their own
// connections and say so; they join when NATS comes up; a NATS crash
// loses no local connection and takes nobody out of presence; the cluster
// heals by itself when NATS returns.
func TestClusterNATSOutage(t *testing.T) {
	clustertest.NATS(t) // the shared server is not used, but CI must have one
	ns := &natsServer{t: t, addr: freeAddr(t), dir: t.TempDir()}
	t.Cleanup(ns.kill)
	url := "nats://" + ns.addr
	const expiry = 2 * time.Second
	s := newSite(t, url, "CHANNELS_CLUSTER_EXPIRY="+expiry.String())
	a, b := s.startNode(url), s.startNode(url)
	for _, n := range []*node{a, b} {
		if !strings.Contains(n.logs.String(), "NATS not reachable") {
			t.Fatalf("a process without NATS does not say so:\n%s", n.logs)
		}
	}
	ch := s.channel()
	ma, mb := s.member(ch), s.member(ch)
	ca, cb := dialNode(t, a, "a"), dialNode(t, b, "b")
	ca.join(ma, "sa") // logins work without NATS
	cb.join(mb, "sb")

	ns.start()
	// Once both have reconnected, a broadcast crosses.
	crosses := func(what string) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for i := 0; ; i++ {
			data := fmt.Sprintf("%s-%d", what, i)
			ca.broadcast(ch, data)
			// Any of this phase's events will do: one sent before the
			// reconnect may come late.
			if f := cb.next(500 * time.Millisecond); f != nil && strings.HasPrefix(fmt.Sprint(params(f)["eventData"]), what+"-") {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("no broadcast across processes %s", what)
			}
			time.Sleep(500 * time.Millisecond) // the budget: 2/s
		}
	}
	crosses("after start")

	waitPeers(t, a, b)
	ns.kill()
	// The outage lasts longer than the expiry (the fault itself, not a
	// wait for something to happen).
	time.Sleep(expiry + time.Second)
	for _, c := range []*client{ca, cb} {
		if r := c.call("echo", map[string]any{"alive": true}); r["result"] == nil {
			t.Fatalf("%s: local connection lost with NATS: %v", c.name, r)
		}
	}
	ns.start()
	crosses("after the outage")
	// Nobody was taken for gone meanwhile: once each process has heard the
	// other again, none can have found it silent (no leave events, no
	// deaths counted).
	waitPeers(t, a, b)
	for _, n := range []*node{a, b} {
		if v, err := n.metric("channels_cluster_peers_dead_total"); err != nil || v != 0 {
			t.Fatalf("%s took %v peers for dead during the outage (%v)", n.addr, v, err)
		}
	}
	ca.broadcast(ch, "marker")
	cb.broadcast(ch, "marker")
	for _, c := range []*client{ca, cb} {
		if f := c.waitFor(5*time.Second, "marker", func(f map[string]any) bool {
			return f["method"] == "verto.event" && (params(f)["eventData"] == leaveData || params(f)["eventData"] == "marker")
		}); params(f)["eventData"] == leaveData {
			t.Fatalf("%s: leave event after a NATS outage: %v", c.name, f)
		}
	}
	for _, n := range []*node{a, b} {
		l := n.logs.String()
		if !strings.Contains(l, "lost the connection to NATS") || !strings.Contains(l, "reconnected to NATS") {
			t.Fatalf("the outage is not in the log:\n%s", l)
		}
	}
}

// TestNATSCredentials: a URL with a user and password connects to a NATS
// that requires them; a wrong password is logged, without the password,
// and retried.
func TestNATSCredentials(t *testing.T) {
	clustertest.NATS(t)
	ns := &natsServer{t: t, addr: freeAddr(t), dir: t.TempDir(), args: []string{"--user", "channels", "--pass", "s3cret-pw"}}
	t.Cleanup(ns.kill)
	ns.start()
	for _, tt := range []struct {
		pass string
		ok   bool
	}{{"s3cret-pw", true}, {"wrong-pw", false}} {
		var logs syncBuffer
		node, err := cluster.New(cluster.Options{
			URL:    "nats://channels:" + tt.pass + "@" + ns.addr,
			Prefix: "cred" + randomHex(4),
			Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		})
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(3 * time.Second)
		for !node.Stats().Connected && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if got := node.Stats().Connected; got != tt.ok {
			t.Errorf("password %s: connected %v", tt.pass, got)
		}
		if !tt.ok && strings.Contains(logs.String(), "connection closed") {
			t.Errorf("gave up after a refused password:\n%s", logs.String())
		}
		_ = node.Close(context.Background())
		if strings.Contains(logs.String(), tt.pass) {
			t.Errorf("the log shows the password:\n%s", logs.String())
		}
		if !tt.ok && !strings.Contains(logs.String(), "level=WARN msg=\"cluster: cannot connect to NATS; retrying\" node=") {
			t.Errorf("a refused password is not logged:\n%s", logs.String())
		}
	}
}
