// Package clustertest finds the NATS server the cluster's tests join, for
// the tests of several packages (the cluster's own, the end-to-end ones).
package clustertest

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// NATS returns the URL of the tests' NATS server: CHANNELS_TEST_NATS, or
// the local one on 127.0.0.1:4222. When it does not answer the test is
// skipped, or fails when CI is set: CI must run the cluster's tests.
func NATS(t testing.TB) string {
	t.Helper()
	u := os.Getenv("CHANNELS_TEST_NATS")
	if u == "" {
		u = "nats://127.0.0.1:4222"
	}
	nc, err := nats.Connect(u, nats.Timeout(3*time.Second))
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("NATS at %s is required in CI: %v", u, err)
		}
		t.Skipf("NATS at %s not reachable: %v", u, err)
	}
	nc.Close()
	return u
}

// Prefix returns a subject prefix of name and 12 random hex digits: the
// cluster of one test, on a NATS server other tests share.
func Prefix(name string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return name + hex.EncodeToString(b[:])
}
