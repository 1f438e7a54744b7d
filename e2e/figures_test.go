package e2e

import (
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// remotePlays, run on the callee's page before the call, keeps in
// window.__played a promise of the moment (the page's Date.now()) the
// remote video plays as mustPlay means it: frames decoded, not paused, and
// its currentTime past the value it had when it first had frames and ran
// (mustPlay also asks that to be 0.3 s, a wait a timing must not add). It
// follows the page's and the video's events rather than polling (the
// peer's tile, with its video, is made when the call is accepted), so the
// moment comes with no delay of the test's own.
const remotePlays = `window.__played = new Promise((done) => {
  let at = -1, v = null;
  const check = () => {
    if (!(v.videoWidth > 0 && !v.paused)) return;
    if (at < 0) at = v.currentTime;
    else if (v.currentTime > at) done(Date.now());
  };
  const find = () => {
    if (v || !(v = ` + remoteVideo + `)) return;
    seen.disconnect();
    for (const e of ['playing', 'resize', 'timeupdate']) v.addEventListener(e, check);
    check();
  };
  const seen = new MutationObserver(find);
  seen.observe(document.getElementById('channel-app'), { childList: true, subtree: true });
  find();
}), true`

// warmUp makes b a browser a person already has open: it has shown a page
// and played a sound after a click, so its audio stack is up.
func warmUp(b testing.TB, br *browser, url string) {
	b.Helper()
	if err := br.navigate(url); err != nil {
		b.Fatal(err)
	}
	br.click(`body`)
	if !mustAwait[bool](br, `(async () => {
  const ctx = new AudioContext();
  const o = ctx.createOscillator();
  o.connect(ctx.destination);
  o.start(); o.stop(ctx.currentTime + 0.05);
  await new Promise((r) => o.onended = r);
  await ctx.close();
  return true;
})()`) {
		b.Fatalf("%s: could not play a sound", br.name)
	}
}

// pageToPlaying times one call as people meet it: from navigating both
// browsers to the channel page until the callee's remote video plays. Each
// click is a real input event sent as soon as its button shows.
func pageToPlaying(b testing.TB, srv *app, alice, bob *browser, i int) time.Duration {
	b.Helper()
	room, err := srv.store.CreateChannel(b.Context(), fmt.Sprint("figures ", i), false, 0)
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	openBoth(b, srv.url("/c/"+room.ID), alice, bob)
	loaded := time.Since(start)
	bID := clientID(bob)
	mustEval[bool](bob, remotePlays)
	alice.mustWait(sees(bID), 10*time.Second)
	met := time.Since(start)
	alice.click(callButton(bID))
	bob.mustWait(ringing, 5*time.Second)
	rang := time.Since(start)
	bob.click(`#channel-app .accept`)
	bob.mustWait(inCall, 10*time.Second)
	connected := time.Since(start)
	took := time.UnixMilli(int64(mustAwait[float64](bob, `window.__played`))).Sub(start)
	b.Logf("pages loaded %v, listed %v, ringing %v, connected %v, video playing %v", loaded, met, rang, connected, took)
	return took
}

// BenchmarkPageToPlaying reports how long a person waits from opening a
// channel page to seeing the other side: "warm" with both browsers already
// running (the everyday case), "cold" including the browsers' start. Run
// with -benchtime=Nx; it reports the median and the worst of N calls.
func BenchmarkPageToPlaying(b *testing.B) {
	exe := chromiumPath(b)
	srv := startApp(b, "127.0.0.1:0", filepath.Join(b.TempDir(), "channels.db"))
	report := func(b *testing.B, runs []time.Duration) {
		slices.Sort(runs)
		b.ReportMetric(float64(runs[len(runs)/2].Milliseconds()), "ms-median")
		b.ReportMetric(float64(runs[len(runs)-1].Milliseconds()), "ms-max")
	}
	b.Run("warm", func(b *testing.B) {
		var runs []time.Duration
		for i := range b.N {
			b.StopTimer()
			alice, bob := newBrowser(b, exe, "alice"), newBrowser(b, exe, "bob")
			warmUp(b, alice, srv.url("/"))
			warmUp(b, bob, srv.url("/"))
			b.StartTimer()
			runs = append(runs, pageToPlaying(b, srv, alice, bob, i))
			b.StopTimer()
			alice.close()
			bob.close()
			b.StartTimer()
		}
		report(b, runs)
	})
	b.Run("cold", func(b *testing.B) {
		var runs []time.Duration
		for i := range b.N {
			start := time.Now()
			alice, bob := newBrowser(b, exe, "alice"), newBrowser(b, exe, "bob")
			started := time.Since(start)
			runs = append(runs, started+pageToPlaying(b, srv, alice, bob, 1000+i))
			b.StopTimer()
			alice.close()
			bob.close()
			b.StartTimer()
		}
		report(b, runs)
	})
}
