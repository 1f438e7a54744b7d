// Package e2e holds the end-to-end tests of Channels: the real application,
// started in-process on a real listener with a throw-away SQLite database,
// driven through real headless Chromium (with fake camera and microphone)
// by chromedp. Two browsers meet in a channel, call each other and hang
// up; a third in another channel sees none of it; a server restart is
// survived without a page reload.
//
// TestFirefoxCall puts a headless Firefox (Debian's firefox-esr, driven
// over WebDriver BiDi by the small client in e2e/bidi) and a Chromium in
// one channel and calls both ways.
//
// The tests need Debian's chromium (/usr/bin/chromium, or CHANNELS_CHROMIUM)
// and firefox-esr (or CHANNELS_FIREFOX). Without them they are skipped,
// except when CI is set, where they fail.
// Screenshots go to CHANNELS_E2E_ARTIFACTS (default: a temporary
// directory, named in the test log).
package e2e
