package e2e

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
)

// The camera check before a call, as the page shows it.
const (
	checkButton = `#channel-app .check`
	checkOn     = `document.getElementById('channel-app').hasAttribute('data-check')`
	ownVideo    = `document.querySelector('#channel-app video.local')`
	levelMeter  = `document.querySelector('#channel-app meter.level')`
	problemText = `(document.querySelector('#channel-app .problem')?.textContent || '')`
	// ownAudioDevice is the device id of the microphone the own video's stream uses.
	ownAudioDevice = `(` + ownVideo + `.srcObject?.getAudioTracks()[0]?.getSettings().deviceId || '')`
)

// meterLevels samples the level meter every 50 ms for two seconds.
func meterLevels(b *browser) []float64 {
	b.t.Helper()
	return mustAwait[[]float64](b, `new Promise((done) => {
  const v = [], i = setInterval(() => v.push(`+levelMeter+`.value), 50);
  setTimeout(() => { clearInterval(i); done(v); }, 2000);
})`)
}

// spread is the smallest and the largest of levels.
func spread(levels []float64) (lo, hi float64) {
	lo, hi = 2, -1
	for _, v := range levels {
		lo, hi = min(lo, v), max(hi, v)
	}
	return lo, hi
}

// TestPrejoin: before any call, a person on a laptop and one on a phone
// each open the camera check: their own video plays, the level meter
// follows Chromium's beeping fake microphone, the device lists are
// filled and show the devices in use, and on the phone the people and
// their Call buttons stay on the first screen. A microphone chosen there
// is the one the call then uses, and the call takes the running camera
// over; after the call nothing runs any more.
func TestPrejoin(t *testing.T) {
	exe := chromiumPath(t)
	artifacts := artifactsDir(t)
	srv := startApp(t, "127.0.0.1:0", filepath.Join(t.TempDir(), "channels.db"))
	room, err := srv.store.CreateChannel(t.Context(), "Camera check", false, 0)
	if err != nil {
		t.Fatal(err)
	}
	dana := newBrowser(t, exe, "dana (laptop)")
	erin := newBrowser(t, exe, "erin (phone)")
	dana.mustEmulateDesktop()
	erin.mustEmulatePhone()
	openBoth(t, srv.url("/c/"+room.ID), dana, erin)
	danaID, erinID := clientID(dana), clientID(erin)
	for _, b := range []*browser{dana, erin} {
		b.mustWait(connReady, 10*time.Second)
	}
	dana.mustWait(sees(erinID), 5*time.Second)
	erin.mustWait(sees(danaID), 5*time.Second)

	for _, b := range []*browser{dana, erin} {
		// Nothing runs until the person asks.
		if mustEval[bool](b, ownVideo+`.srcObject !== null || `+checkOn) {
			t.Errorf("%s: the camera runs before the person asked", b.name)
		}
		if s := mustEval[string](b, `document.querySelector('`+checkButton+`').textContent`); s != "Check camera and microphone" {
			t.Errorf("%s: check button says %q", b.name, s)
		}
		b.click(checkButton)
		b.mustWait(checkOn, 10*time.Second)
		mustPlayVideo(b, ownVideo)
		if s := mustEval[string](b, `document.querySelector('`+checkButton+`').getAttribute('aria-expanded') + ' ' + document.querySelector('`+checkButton+`').textContent`); s != "true Turn camera and microphone off" {
			t.Errorf("%s: while checking, the button is %q", b.name, s)
		}

		// Chromium's fake microphone beeps: the meter rises and falls.
		levels := meterLevels(b)
		if lo, hi := spread(levels); hi < 0.3 || hi-lo < 0.2 {
			t.Errorf("%s: level meter between %.2f and %.2f over 2 s, want it moving with the beeps (%v)", b.name, lo, hi, levels)
		}

		// The device lists: named devices, the ones in use chosen.
		b.mustWait(`document.querySelectorAll('#channel-app select[name=audio] option').length > 0 && document.querySelectorAll('#channel-app select[name=video] option').length > 0`, 5*time.Second)
		if s := mustEval[string](b, `[...document.querySelectorAll('#channel-app select option')].filter(o => !o.textContent.trim()).length + ' unnamed'`); s != "0 unnamed" {
			t.Errorf("%s: device options without names: %s", b.name, s)
		}
		if !mustEval[bool](b, `document.querySelector('#channel-app select[name=audio]').value === `+ownAudioDevice) {
			t.Errorf("%s: the microphone list does not show the microphone in use", b.name)
		}
		if !mustEval[bool](b, `document.querySelector('#channel-app select[name=video]').value === `+ownVideo+`.srcObject.getVideoTracks()[0].getSettings().deviceId`) {
			t.Errorf("%s: the camera list does not show the camera in use", b.name)
		}
		checkLayout(t, b, "camera check")
		if p := b.problems(); p != "" {
			t.Errorf("%s: page problems: %s", b.name, p)
		}
	}
	t.Logf("screenshots of the camera check: %s, %s", dana.screenshot(artifacts, "prejoin.png"), erin.screenshot(artifacts, "prejoin-phone.png"))
	t.Run("axe", func(t *testing.T) {
		src := axeSource(t)
		axeCheck(t, dana, src, "channel, camera check, 1280×800")
		axeCheck(t, erin, src, "channel, camera check, 390×844")
	})

	// Dana chooses the last microphone on the list (Chromium's fakes have
	// three): the check starts again with it.
	chosen := mustEval[string](dana, `document.querySelector('#channel-app select[name=audio]').lastElementChild.value`)
	if chosen == mustEval[string](dana, ownAudioDevice) {
		t.Fatalf("the last microphone %q is already in use; nothing to choose", chosen)
	}
	mustEval[bool](dana, `(() => { const s = document.querySelector('#channel-app select[name=audio]'); s.value = `+jsString(chosen)+`; s.dispatchEvent(new Event('change')); return true })()`)
	dana.mustWait(ownAudioDevice+` === `+jsString(chosen), 5*time.Second)
	mustPlayVideo(dana, ownVideo)

	// The call takes the check's camera and microphone over.
	danaTrack := mustEval[string](dana, ownVideo+`.srcObject.getVideoTracks()[0].id`)
	dana.click(callButton(erinID))
	erin.mustWait(ringing, 5*time.Second)
	for _, b := range []*browser{dana, erin} {
		if mustEval[bool](b, checkOn) {
			t.Errorf("%s: the camera check still shows with a call under way", b.name)
		}
	}
	// No meter runs while the check is not shown.
	if lo, hi := spread(meterLevels(erin)); hi != 0 || lo != 0 {
		t.Errorf("erin: level meter at %.2f…%.2f while ringing, want it stopped at 0", lo, hi)
	}
	erin.click(`#channel-app .accept`)
	dana.mustWait(inCall, 10*time.Second)
	erin.mustWait(inCall, 10*time.Second)
	dana.mustWait(ownAudioDevice+` === `+jsString(chosen), 5*time.Second)
	if id := mustEval[string](dana, ownVideo+`.srcObject.getVideoTracks()[0].id`); id != danaTrack {
		t.Errorf("dana's call started the camera again (track %s, the check's was %s)", id, danaTrack)
	}
	for _, b := range []*browser{dana, erin} {
		mustPlay(b)
		mustPlayVideo(b, ownVideo)
	}
	// What erin hears comes from the microphone dana chose: the call's
	// audio sender carries that track.
	if !mustEval[bool](dana, `document.querySelector('#channel-app video.local').srcObject.getAudioTracks()[0].readyState === 'live'`) {
		t.Errorf("dana's chosen microphone is not live in the call")
	}
	t.Logf("screenshot of a call after the camera check: %s", dana.screenshot(artifacts, "prejoin-then-call.png"))

	dana.click(`#channel-app .hangup`)
	for _, b := range []*browser{dana, erin} {
		b.mustWait(idle, 5*time.Second)
		// After the call, no camera runs and the check is off.
		b.mustWait(`[...document.querySelectorAll('video')].every(v => !v.srcObject) && !`+checkOn, 5*time.Second)
		if s := mustEval[string](b, `document.querySelector('`+checkButton+`').textContent`); s != "Check camera and microphone" {
			t.Errorf("%s: after the call the check button says %q", b.name, s)
		}
		if p := b.problems(); p != "" {
			t.Errorf("%s: page problems: %s", b.name, p)
		}
	}
}

// newAskingBrowser starts a headless Chromium with fake media devices but
// without --use-fake-ui-for-media-stream, which would grant every request:
// here the permissions the test sets through the DevTools protocol
// decide. fakeDevices is the value of --use-fake-device-for-media-stream
// ("device-count=0": no camera).
func newAskingBrowser(t *testing.T, exe, name, fakeDevices string, perms map[string]cdpbrowser.PermissionSetting, origin string) *browser {
	t.Helper()
	b := launchBrowser(t, exe, name, chromedp.Flag("use-fake-device-for-media-stream", fakeDevices))
	for p, s := range perms {
		if _, err := chromedp.CallBrowser(b.ctx, cdpbrowser.SetPermission, cdpbrowser.SetPermissionParams{Permission: &cdpbrowser.PermissionDescriptor{Name: p}, Setting: s, Origin: origin}); err != nil {
			t.Fatalf("%s: set permission %s %s: %v", name, p, s, err)
		}
	}
	return b
}

// TestPrejoinProblems: the camera check says what is wrong, in words, on
// the page and in the live region: camera and microphone denied, and no
// camera at all (then the microphone alone runs, its meter moving).
func TestPrejoinProblems(t *testing.T) {
	exe := chromiumPath(t)
	artifacts := artifactsDir(t)
	srv := startApp(t, "127.0.0.1:0", filepath.Join(t.TempDir(), "channels.db"))
	room, err := srv.store.CreateChannel(t.Context(), "Problems", false, 0)
	if err != nil {
		t.Fatal(err)
	}
	denied := cdpbrowser.PermissionSettingDenied
	granted := cdpbrowser.PermissionSettingGranted
	for _, c := range []struct {
		name, devices string
		perms         map[string]cdpbrowser.PermissionSetting
		want          string
		running       string // the kinds of track that still run
		shot          string
	}{
		{"denied", "true", map[string]cdpbrowser.PermissionSetting{"camera": denied, "microphone": denied},
			"Permission for the camera and microphone was denied", "", "prejoin-denied"},
		{"no camera", "device-count=0", map[string]cdpbrowser.PermissionSetting{"camera": granted, "microphone": granted},
			"No camera found.", "audio", "prejoin-no-camera"},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := newAskingBrowser(t, exe, c.name, c.devices, c.perms, srv.url(""))
			b.mustEmulatePhone()
			if err := b.navigate(srv.url("/c/" + room.ID)); err != nil {
				t.Fatal(err)
			}
			b.mustWait(connReady, 10*time.Second)
			b.click(checkButton)
			b.mustWait(problemText+` !== ''`, 10*time.Second)
			if s := mustEval[string](b, problemText); !strings.HasPrefix(s, c.want) {
				t.Errorf("the page says %q, want %q…", s, c.want)
			}
			if !mustEval[bool](b, `(() => { const e = document.querySelector('#channel-app .problem'); return e.checkVisibility() && e.getBoundingClientRect().bottom <= innerHeight })()`) {
				t.Errorf("the problem is not visible on the first screen")
			}
			if s := mustEval[string](b, lastSaid); s != mustEval[string](b, problemText) {
				t.Errorf("the live region's last words are %q, not the problem", s)
			}
			kinds := mustEval[string](b, `(`+ownVideo+`.srcObject?.getTracks() || []).map(t => t.kind).join(' ')`)
			if kinds != c.running {
				t.Errorf("tracks running: %q, want %q", kinds, c.running)
			}
			if c.running == "audio" {
				b.mustWait(checkOn, 2*time.Second)
				if _, hi := spread(meterLevels(b)); hi < 0.3 {
					t.Errorf("the microphone alone runs, but its meter stays at %.2f", hi)
				}
			} else if s := mustEval[string](b, `document.querySelector('`+checkButton+`').textContent`); s != "Check camera and microphone" {
				t.Errorf("with nothing running, the button says %q, want to try again", s)
			}
			t.Logf("screenshot: %s", b.screenshot(artifacts, c.shot+"-phone.png"))
			if p := b.problems(); p != "" {
				t.Errorf("page problems: %s", p)
			}
		})
	}
}
