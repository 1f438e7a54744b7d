package e2e

import (
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// Presence deadlines a person would notice, with room for a loaded 2-core
// machine: the aims are 1 s (listed after coming online) and 3 s (gone
// after the last socket closed); the figures are logged.
const (
	listedWithin = 3 * time.Second
	goneWithin   = 5 * time.Second
)

// channelOf reads the page's channel id from its configuration.
func channelOf(b *browser) string {
	b.t.Helper()
	return mustEval[string](b, `JSON.parse(document.getElementById('channel-config').textContent).channelId`)
}

// callable is true when the Call button next to a peer can be used.
func callable(id string) string {
	return `document.querySelector(` + jsString(callButton(id)) + `)?.getAttribute('aria-disabled') === 'false'`
}

// presenceSite starts Channels one way and says where alice's and bob's
// pages go.
type presenceSite struct {
	name  string
	start func(t testing.TB) (alice, bob *app)
}

// presenceSites are the two ways the embedded hub runs: one process, and
// two processes joined over NATS, alice on the first and bob on the second.
func presenceSites() []presenceSite {
	return []presenceSite{
		{"one process", func(t testing.TB) (*app, *app) {
			a := startApp(t, "127.0.0.1:0", filepath.Join(t.TempDir(), "channels.db"))
			return a, a
		}},
		{"two processes", startClusterPair},
	}
}

// TestPresenceEdges: what a person sees at the edges people hit every
// day, on one process and across two: the other side reloads (its page
// lists everyone at once and can be called at once), opens a second tab
// (which takes over), closes the tab (gone for the others within
// seconds), and its tab crashes while being rung (gone, and the ringing
// stops).
func TestPresenceEdges(t *testing.T) {
	exe := chromiumPath(t)
	for _, site := range presenceSites() {
		t.Run(site.name, func(t *testing.T) {
			one, two := site.start(t)
			alice, bob, aliceID, bobID := meetOn(t, exe, one, two, "Edges", listedWithin)
			room := channelOf(bob)

			// Reload: the reloaded page lists alice within a second of
			// being online, and alice lists it again.
			var listed []time.Duration
			for range 5 {
				bob.must(20*time.Second, chromedp.Reload())
				bob.mustWait(connReady, 10*time.Second)
				listed = append(listed, bob.mustWait(sees(aliceID), listedWithin))
				alice.mustWait(sees(bobID), listedWithin)
			}
			slices.Sort(listed)
			t.Logf("reloaded page listed its peer %v after being online (sorted, %d reloads)", listed, len(listed))
			// ... and can be called at once.
			alice.click(callButton(bobID))
			bob.mustWait(ringing, 5*time.Second)
			bob.click(`#channel-app .decline`)
			alice.mustWait(idle, 5*time.Second)
			alice.mustWait(callable(bobID), 5*time.Second)

			// A second tab takes the session over: it lists alice at once,
			// alice keeps listing bob, and a call rings in the new tab.
			tab := bob.newTab("bob's second tab")
			if err := tab.navigate(two.url("/c/" + room)); err != nil {
				t.Fatal(err)
			}
			tab.mustWait(connReady, 10*time.Second)
			took := tab.mustWait(sees(aliceID), listedWithin)
			t.Logf("second tab listed its peer %v after being online", took)
			bob.mustWait(`document.getElementById('channel-app').dataset.conn === 'punted'`, 5*time.Second)
			alice.mustWait(sees(bobID), listedWithin)
			alice.click(callButton(bobID))
			tab.mustWait(ringing, 5*time.Second)
			tab.click(`#channel-app .decline`)
			alice.mustWait(idle, 5*time.Second)

			// Closing the tab: bob is gone from alice's list.
			closed := time.Now()
			tab.close()
			alice.mustWait(`!(`+sees(bobID)+`)`, goneWithin)
			t.Logf("a closed tab left alice's list after %v", time.Since(closed))

			// Back (the first tab, reloaded), rung, and its renderer
			// crashes: alice's list drops bob and her call stops ringing.
			bob.must(20*time.Second, chromedp.Reload())
			bob.mustWait(connReady, 10*time.Second)
			alice.mustWait(sees(bobID), listedWithin)
			bob.mustWait(sees(aliceID), listedWithin)
			alice.mustWait(callable(bobID), 5*time.Second)
			alice.click(callButton(bobID))
			bob.mustWait(ringing, 5*time.Second)
			crashed := time.Now()
			go func() { _, _ = chromedp.Call(bob.ctx, page.Crash, cdp.Empty{}) }() // answers never: the renderer is gone
			alice.mustWait(`!(`+sees(bobID)+`)`, goneWithin)
			alice.mustWait(idle, goneWithin)
			t.Logf("a crashed tab left alice's list after %v", time.Since(crashed))
			if p := alice.problems(); p != "" {
				t.Errorf("alice: page problems: %s", p)
			}
		})
	}
}

// TestFirefoxReload: a Firefox page that reloads lists its Chromium peer
// within a second of being online, is listed again, and rings at once.
func TestFirefoxReload(t *testing.T) {
	chromium := chromiumPath(t)
	fx := firefoxPath(t)
	srv := startApp(t, "127.0.0.1:0", filepath.Join(t.TempDir(), "channels.db"))
	room, err := srv.store.CreateChannel(t.Context(), "Firefox reloads", false, 0)
	if err != nil {
		t.Fatal(err)
	}
	fox := newFirefox(t, fx, "firefox")
	chrome := newBrowser(t, chromium, "chromium")
	url := srv.url("/c/" + room.ID)
	if err := chrome.navigate(url); err != nil {
		t.Fatal(err)
	}
	chromeID := clientID(chrome)
	chrome.mustWait(connReady, 10*time.Second)
	var listed []time.Duration
	var foxID string
	for range 3 {
		if err := fox.navigate(url); err != nil { // the same URL again: a reload
			t.Fatal(err)
		}
		fox.mustWait(connReady, 10*time.Second)
		listed = append(listed, fox.mustWait(sees(chromeID), listedWithin))
		if foxID == "" {
			foxID = ffMustEval[string](fox, `JSON.parse(document.getElementById('channel-config').textContent).clientId`)
		}
		chrome.mustWait(sees(foxID), listedWithin)
	}
	t.Logf("firefox listed its peer %v after being online (first visit, then reloads)", listed)
	chrome.mustWait(callable(foxID), 5*time.Second)
	chrome.click(callButton(foxID))
	fox.mustWait(ringing, 5*time.Second)
	fox.click(`#channel-app .decline`)
	chrome.mustWait(idle, 5*time.Second)
	if p := fox.problems() + chrome.problems(); p != "" {
		t.Errorf("page problems: %s", p)
	}
}

// BenchmarkReload: how long a reloaded page takes, once online, to list
// the peer already there: 20 reloads on one process and across two, back
// to back (as fast as a script can reload, which spends the peer's answer
// budget: 3 at once, then one a second) and at a person's pace (one
// reload every 2 s). Reports p50 and p95 in milliseconds.
func BenchmarkReload(b *testing.B) {
	exe := chromiumPath(b)
	for _, site := range presenceSites() {
		for _, pace := range []time.Duration{0, 2 * time.Second} {
			name := site.name + "/back to back"
			if pace > 0 {
				name = site.name + "/every " + pace.String()
			}
			b.Run(name, func(b *testing.B) {
				one, two := site.start(b)
				room, err := one.store.CreateChannel(b.Context(), "Reloads", true, 0)
				if err != nil {
					b.Fatal(err)
				}
				alice := newBrowser(b, exe, "alice")
				bob := newBrowser(b, exe, "bob")
				if err := alice.navigate(one.url("/c/" + room.ID)); err != nil {
					b.Fatal(err)
				}
				aliceID := clientID(alice)
				alice.mustWait(connReady, 10*time.Second)
				if err := bob.navigate(two.url("/c/" + room.ID)); err != nil {
					b.Fatal(err)
				}
				bob.mustWait(connReady, 10*time.Second)
				bob.mustWait(sees(aliceID), listedWithin)
				var listed []time.Duration
				for b.Loop() {
					listed = listed[:0]
					for range 20 {
						began := time.Now()
						bob.must(20*time.Second, chromedp.Reload())
						bob.mustWait(connReady, 10*time.Second)
						listed = append(listed, bob.mustWait(sees(aliceID), 10*time.Second))
						if rest := pace - time.Since(began); rest > 0 {
							time.Sleep(rest) // a person's pace, not synchronisation
						}
					}
				}
				slices.Sort(listed)
				b.ReportMetric(float64(listed[len(listed)/2].Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(listed[len(listed)*95/100].Microseconds())/1000, "p95-ms")
				b.ReportMetric(float64(listed[len(listed)-1].Microseconds())/1000, "max-ms")
			})
		}
	}
}
