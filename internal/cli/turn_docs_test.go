package cli

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"channels/internal/turn"
)

// turnDocConfig is the coturn configuration docs/TURN.md tells operators
// to write: the first code block of its "## coturn" section.
func turnDocConfig(t *testing.T) string {
	t.Helper()
	return docBlock(t, "TURN.md", "coturn", "```\n")
}

// mustDeny are peer addresses a relay must never reach: the TURN host's
// own networks, addresses that are not the internet's, and the IPv6
// forms of IPv4 addresses (mapped, NAT64, 6to4, Teredo).
var mustDeny = []string{
	"0.0.0.1", "10.1.2.3", "100.64.0.1", "127.0.0.1", "169.254.169.254", "172.16.0.1", "172.31.255.254",
	"192.0.0.1", "192.0.2.1", "192.88.99.1", "192.168.1.1", "198.18.0.1", "198.51.100.1", "203.0.113.1",
	"240.0.0.1", "255.255.255.255",
	"::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "64:ff9b::a00:1", "64:ff9b:1::a00:1", "100::1",
	"2001::a00:1", "2001:db8::1", "2002:a00:1::1", "fc00::1", "fd12:3456::1", "fe80::1",
}

// TestTURNDocDeniedPeers: the denied-peer-ip ranges of docs/TURN.md's
// coturn configuration cover every address of mustDeny and none of a few
// public ones, and TCP relays are off.
func TestTURNDocDeniedPeers(t *testing.T) {
	type span struct{ from, to netip.Addr }
	var denied []span
	conf := turnDocConfig(t)
	for _, m := range regexp.MustCompile(`(?m)^denied-peer-ip=(\S+)$`).FindAllStringSubmatch(conf, -1) {
		from, to, isRange := strings.Cut(m[1], "-")
		if !isRange {
			to = from
		}
		a, err1 := netip.ParseAddr(from)
		b, err2 := netip.ParseAddr(to)
		if err1 != nil || err2 != nil || a.Is4() != b.Is4() || b.Less(a) {
			t.Fatalf("denied-peer-ip=%s is not a range of addresses of one family", m[1])
		}
		denied = append(denied, span{a, b})
	}
	deniedAddr := func(a netip.Addr) bool {
		for _, s := range denied {
			// Ranges of one family: an IPv4-mapped address is IPv6 here,
			// as coturn compares it.
			if a.Is4() == s.from.Is4() && !a.Less(s.from) && !s.to.Less(a) {
				return true
			}
		}
		return false
	}
	for _, s := range mustDeny {
		if !deniedAddr(netip.MustParseAddr(s)) {
			t.Errorf("docs/TURN.md's coturn configuration lets relays reach %s", s)
		}
	}
	for _, s := range []string{"8.8.8.8", "1.1.1.1", "100.63.255.254", "198.20.0.1", "2606:4700:4700::1111", "2a00:1450:4001::1"} {
		if deniedAddr(netip.MustParseAddr(s)) {
			t.Errorf("docs/TURN.md's coturn configuration denies the public address %s", s)
		}
	}
	for _, want := range []string{"no-tcp-relay", "no-multicast-peers"} {
		if !regexp.MustCompile(`(?m)^` + want + `$`).MatchString(conf) {
			t.Errorf("docs/TURN.md's coturn configuration lacks %s", want)
		}
	}
}

// TestTURNDocConfigRuns runs a real coturn with docs/TURN.md's
// configuration, moved to loopback for the test (the test's ports, no
// certificate, loopback peers allowed so two relays on 127.0.0.1 can meet,
// a log file): coturn takes every line; two clients relay to each other
// through it, so no line denies more than it says (a range across
// address families once denied every peer); and relays to denied IPv4
// peers are refused (403 Forbidden IP).
func TestTURNDocConfigRuns(t *testing.T) {
	turnserver := tool(t, "turnserver", "coturn")
	uclient := tool(t, "turnutils_uclient", "coturn")
	dir := t.TempDir()
	port := freePort(t)
	const secret = "a-test-secret-of-32-characters!!"
	minPort := 40000 + port%20000
	edits := []struct{ re, repl string }{
		{`(?m)^listening-port=.*$`, fmt.Sprintf("listening-port=%d\nlistening-ip=127.0.0.1\nrelay-ip=127.0.0.1", port)},
		{`(?m)^tls-listening-port=.*$`, "no-tls\nno-dtls"},
		{`(?m)^(external-ip|cert|pkey|no-tlsv1|no-tlsv1_1)=?.*$`, ""},
		{`(?m)^min-port=.*$`, fmt.Sprintf("min-port=%d", minPort)},
		{`(?m)^max-port=.*$`, fmt.Sprintf("max-port=%d", minPort+99)},
		{`(?m)^static-auth-secret=.*$`, "static-auth-secret=" + secret},
		{`(?m)^denied-peer-ip=127\.0\.0\.0-127\.255\.255\.255$`, "allow-loopback-peers"},
		{`(?m)^syslog$`, fmt.Sprintf("log-file=%s\nsimple-log\npidfile=%s", filepath.Join(dir, "turn.log"), filepath.Join(dir, "turn.pid"))},
	}
	conf := turnDocConfig(t)
	for _, e := range edits {
		edited := regexp.MustCompile(e.re).ReplaceAllString(conf, e.repl)
		if edited == conf {
			t.Fatalf("the test no longer knows how to move docs/TURN.md's coturn configuration (%s)", e.re)
		}
		conf = edited
	}
	path := filepath.Join(dir, "turnserver.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	startProxy(t, exec.CommandContext(t.Context(), turnserver, "-c", path), port)
	t.Cleanup(func() {
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "turn.log"))
			t.Logf("coturn's log:\n%s", log)
		}
	})

	// A user name for each run: each has its own user-quota.
	relay := func(args ...string) (string, error) {
		user := strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10) + ":check" + strconv.Itoa(len(args)) + args[len(args)-1]
		args = append([]string{"-u", user, "-w", turn.Password([]byte(secret), user), "-p", strconv.Itoa(port)}, args...)
		b, err := exec.CommandContext(t.Context(), uclient, append(args, "127.0.0.1")...).CombinedOutput()
		return string(b), err
	}
	// Two allocations relaying to each other (-y), as two relay-only
	// browsers do.
	if out, err := relay("-y", "-n", "3"); err != nil || !strings.Contains(out, "Total lost packets 0") {
		t.Errorf("relay to relay: %v\n%s", err, out)
	}
	for _, peer := range []string{"10.1.2.3", "169.254.169.254", "192.0.2.1", "203.0.113.1", "240.0.0.1"} {
		if out, _ := relay("-n", "1", "-r", "9", "-e", peer); !strings.Contains(out, "403") {
			t.Errorf("a relay to %s was not refused:\n%s", peer, out)
		}
	}
	if log, _ := os.ReadFile(filepath.Join(dir, "turn.log")); regexp.MustCompile(`(?i)config.*error|wrong.*range|bad configuration`).Match(log) {
		t.Errorf("coturn complains about the configuration:\n%s", log)
	}
}
