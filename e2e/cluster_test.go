package e2e

import (
	"testing"
	"time"

	"channels/internal/cluster/clustertest"
	"channels/internal/config"
	"channels/internal/store/storetest"
)

// startClusterApp serves Channels as startApp does, over the PostgreSQL
// database dbURL, its hub joined to the others of prefix on NATS.
func startClusterApp(t testing.TB, dbURL, natsURL, prefix string) *app {
	t.Helper()
	return startAppWith(t, "127.0.0.1:0", dbURL, func(cfg *config.Config) {
		cfg.Domain = "cluster.test" // one domain for all processes
		cfg.ClusterURL = natsURL
		cfg.ClusterPrefix = prefix
	})
}

// startClusterPair starts two processes of one cluster: a throw-away
// PostgreSQL database, the local NATS, a subject prefix of their own.
func startClusterPair(t testing.TB) (one, two *app) {
	t.Helper()
	natsURL := clustertest.NATS(t)
	db := storetest.PostgresURL(t)
	prefix := clustertest.Prefix("e2e")
	return startClusterApp(t, db, natsURL, prefix), startClusterApp(t, db, natsURL, prefix)
}

// meetOn opens a new public channel of that topic in two fresh browsers,
// alice's page served by one and bob's by two, and waits until both are
// online and list each other (within listed).
func meetOn(t testing.TB, exe string, one, two *app, topic string, listed time.Duration) (alice, bob *browser, aliceID, bobID string) {
	t.Helper()
	room, err := one.store.CreateChannel(t.Context(), topic, true, 0)
	if err != nil {
		t.Fatal(err)
	}
	alice = newBrowser(t, exe, "alice")
	bob = newBrowser(t, exe, "bob")
	if err := alice.navigate(one.url("/c/" + room.ID)); err != nil {
		t.Fatal(err)
	}
	if err := bob.navigate(two.url("/c/" + room.ID)); err != nil {
		t.Fatal(err)
	}
	aliceID, bobID = clientID(alice), clientID(bob)
	alice.mustWait(connReady, 10*time.Second)
	bob.mustWait(connReady, 10*time.Second)
	alice.mustWait(sees(bobID), listed)
	bob.mustWait(sees(aliceID), listed)
	return alice, bob, aliceID, bobID
}

// TestClusterCall: two browsers, each on a different Channels process of
// one cluster (shared PostgreSQL, NATS between the hubs), see each other,
// call, and receive each other's video; a third process's browser in
// another channel sees neither.
func TestClusterCall(t *testing.T) {
	exe := chromiumPath(t)
	// No wait for the processes to hear of each other: a login's and a
	// subscription's replies mean the cluster carries what follows.
	one, two := startClusterPair(t)
	alice, bob, _, bobID := meetOn(t, exe, one, two, "Across processes", 5*time.Second)

	alice.click(callButton(bobID))
	bob.mustWait(ringing, 5*time.Second)
	bob.click(`#channel-app .accept`)
	alice.mustWait(inCall, 10*time.Second)
	bob.mustWait(inCall, 10*time.Second)
	for _, br := range []*browser{alice, bob} {
		mustPlay(br)
		br.mustWait(rxBytes+` > 0`, 5*time.Second)
	}
	t.Logf("screenshot of the call across processes: %s", alice.screenshot(artifactsDir(t), "cluster-call.png"))

	// Bob hangs up: alice's call ends too, through the other process.
	bob.click(`#channel-app .hangup`)
	alice.mustWait(idle, 10*time.Second)
	if p := alice.problems() + bob.problems(); p != "" {
		t.Errorf("browser problems: %s", p)
	}
}

// peerVideo finds the video in the tile of the person with this client id.
func peerVideo(id string) string {
	return `document.querySelector(` + jsString(`#channel-app .tiles [data-peer="`+id+`"] video.remote`) + `)`
}

// TestClusterGroupCall: a call of three across two processes of one
// cluster. Alice (process one) calls Bob (process two), then adds Carol
// (process one): Carol connects with Bob by herself, through the other
// process, and each plays the other two's video; when Alice hangs up,
// Bob and Carol stay in the call with each other.
func TestClusterGroupCall(t *testing.T) {
	exe := chromiumPath(t)
	one, two := startClusterPair(t)
	alice, bob, aliceID, bobID := meetOn(t, exe, one, two, "Three across processes", 5*time.Second)
	carol := newBrowser(t, exe, "carol")
	if err := carol.navigate(mustEval[string](alice, `location.href`)); err != nil {
		t.Fatal(err)
	}
	carolID := clientID(carol)
	carol.mustWait(connReady, 10*time.Second)
	for _, b := range []*browser{alice, bob} {
		b.mustWait(sees(carolID), 5*time.Second)
	}

	alice.click(callButton(bobID))
	bob.mustWait(ringing, 5*time.Second)
	bob.click(`#channel-app .accept`)
	alice.mustWait(inCall, 10*time.Second)
	// In a call, the button beside someone not in it adds them.
	alice.mustWait(`document.querySelector(`+jsString(callButton(carolID))+`)?.textContent === 'Add'`, 5*time.Second)
	// Bob is never asked about Carol: he watches for a request to join.
	mustEval[bool](bob, `(() => { const r = document.getElementById('channel-app'); window.__asked = false; new MutationObserver(() => { if (r.dataset.request) window.__asked = true }).observe(r, { attributes: true, attributeFilter: ['data-request'] }); return true })()`)
	alice.click(callButton(carolID))
	carol.mustWait(ringing, 5*time.Second)
	carol.click(`#channel-app .accept`)
	for _, s := range []struct {
		b      *browser
		others []string
	}{{alice, []string{bobID, carolID}}, {bob, []string{aliceID, carolID}}, {carol, []string{aliceID, bobID}}} {
		for _, id := range s.others {
			mustPlayVideo(s.b, peerVideo(id))
		}
	}
	if mustEval[bool](bob, `window.__asked`) {
		t.Errorf("bob was asked about carol: a member's word should have let her in")
	}
	t.Logf("screenshot of a call of three across processes: %s", carol.screenshot(artifactsDir(t), "cluster-group-call.png"))

	alice.click(`#channel-app .hangup`)
	alice.mustWait(idle, 10*time.Second)
	for _, s := range []struct {
		b    *browser
		peer string
	}{{bob, carolID}, {carol, bobID}} {
		s.b.mustWait(`!document.querySelector(`+jsString(`#channel-app .tiles [data-peer="`+aliceID+`"]`)+`)`, 10*time.Second)
		mustPlayVideo(s.b, peerVideo(s.peer))
		if !mustEval[bool](s.b, inCall) {
			t.Errorf("%s: the call ended when alice left", s.b.name)
		}
	}
	for _, b := range []*browser{alice, bob, carol} {
		if p := b.problems(); p != "" {
			t.Errorf("%s: browser problems: %s", b.name, p)
		}
	}
}
