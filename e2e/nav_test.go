package e2e

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestNavigation follows what a person does with links and the sign-in
// form, in a real browser: a channel link with an upper-case id or a
// trailing slash lands on the channel; a page that needs an account sends
// them to sign in and, once signed in, back to that page; the front page
// explains itself and fits a phone.
func TestNavigation(t *testing.T) {
	exe := chromiumPath(t)
	artifacts := artifactsDir(t)
	srv := startApp(t, "127.0.0.1:0", filepath.Join(t.TempDir(), "channels.db"))
	owner := srv.mustUser("olga", "correct horse")
	room, err := srv.store.CreateChannel(t.Context(), "Pasted link", false, owner.ID)
	if err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t, exe, "visitor")

	// The front page.
	{
		for _, v := range []struct {
			emulate func()
			file    string
		}{{b.mustEmulateDesktop, "index.png"}, {b.mustEmulatePhone, "index-phone.png"}} {
			v.emulate()
			if err := b.navigate(srv.url("/")); err != nil {
				t.Fatal(err)
			}
			// A first-time visitor reads what this is and that calling needs no account.
			text := mustEval[string](b, `document.querySelector('main').innerText`)
			if !strings.Contains(strings.ToLower(text), "no account") {
				t.Errorf("%s: the front page does not say that calling needs no account:\n%s", v.file, text)
			}
			if w := mustEval[[]float64](b, `[document.documentElement.scrollWidth, document.documentElement.clientWidth]`); w[0] > w[1] {
				t.Errorf("%s: the front page scrolls sideways (%v wide in %v)", v.file, w[0], w[1])
			}
			t.Logf("screenshot of the front page: %s", b.screenshot(artifacts, v.file))
		}
		b.mustEmulateDesktop()
	}

	// Channel links as chats and people change them.
	{
		for _, path := range []string{
			"/c/" + strings.ToUpper(room.ID),
			"/c/" + room.ID + "/",
			"/c/" + strings.ToUpper(room.ID) + "/?from=chat",
		} {
			if err := b.navigate(srv.url(path)); err != nil {
				t.Fatal(err)
			}
			got := mustEval[string](b, `location.pathname + location.search`)
			want := "/c/" + room.ID
			if strings.Contains(path, "?") {
				want += "?from=chat"
			}
			if got != want {
				t.Errorf("%s: browser ended at %s, want %s", path, got, want)
			}
			if h := mustEval[string](b, `document.querySelector('h1')?.textContent || ''`); !strings.Contains(h, "Pasted link") {
				t.Errorf("%s: page heading %q, want the channel's name", path, h)
			}
		}
	}

	// A page that needs an account, then back to it.
	{
		page := "/c/" + room.ID + "/edit"
		if err := b.navigate(srv.url(page)); err != nil {
			t.Fatal(err)
		}
		// The edit page of an anonymous visitor offers to sign in; follow
		// the link as a person would, by clicking it.
		if p := mustEval[string](b, `location.pathname`); p != "/signin" {
			link := `a[href^="/signin?next="]`
			b.mustWait(`!!document.querySelector(`+jsString(link)+`)`, 5*time.Second)
			b.click(link)
			b.mustWait(`location.pathname === '/signin' && document.readyState === 'complete'`, 10*time.Second)
		}
		if n := mustEval[string](b, `location.search`); n != "?next="+strings.ReplaceAll(page, "/", "%2F") && n != "?next="+page {
			t.Errorf("sign-in page opened with %q, want next=%s", n, page)
		}
		b.must(10*time.Second,
			chromedp.SendKeys(`input[name=name]`, "olga"),
			chromedp.SendKeys(`input[name=password]`, "correct horse\r"),
		)
		b.mustWait(`location.pathname === `+jsString(page)+` && !!document.querySelector('form input[name=topic]')`, 10*time.Second)
		if v := mustEval[string](b, `document.querySelector('form input[name=topic]').value`); v != "Pasted link" {
			t.Errorf("after signing in: the edit form holds %q, want the channel's name", v)
		}
	}

	if p := b.problems(); p != "" {
		t.Errorf("page problems: %s", p)
	}
}
