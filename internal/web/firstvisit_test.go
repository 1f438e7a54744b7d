package web

import (
	"html"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"channels/internal/store/storetest"
)

// hostileTopic would run script or break out of an attribute if a page
// wrote it unescaped.
const hostileTopic = `<img src=x onerror=alert(1)> & "quoted" 'too'`

// escapedTopic is hostileTopic as html/template writes it in element text.
const escapedTopic = `&lt;img src=x onerror=alert(1)&gt; &amp; &#34;quoted&#34; &#39;too&#39;`

var (
	mainRE   = regexp.MustCompile(`(?s)<main>(.*)</main>`)
	hiddenRE = regexp.MustCompile(`(?s)<(script|noscript)\b.*?</(script|noscript)>`)
	tagRE    = regexp.MustCompile(`<[^>]*>`)
	spaceRE  = regexp.MustCompile(`\s+`)
	// inlineRE matches a tag with a style or event handler attribute, a
	// javascript: URL, or a style element.
	inlineRE = regexp.MustCompile(`(?i)<[^>]*\s(style|on[a-z]+)=[^>]*>|<[^>]*=\s*"?javascript:[^>]*>|<style\b`)
)

// visibleText is the text a person reads in a page's main element: no
// tags, no scripts, entities decoded, white space collapsed.
func visibleText(t *testing.T, body string) string {
	t.Helper()
	m := mainRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no main element:\n%s", body)
	}
	s := hiddenRE.ReplaceAllString(m[1], " ")
	s = html.UnescapeString(tagRE.ReplaceAllString(s, " "))
	return strings.TrimSpace(spaceRE.ReplaceAllString(s, " "))
}

// checkStrictPage fails when a page would need the CSP to allow inline
// styles or scripts.
func checkStrictPage(t *testing.T, body string) {
	t.Helper()
	for _, tag := range inlineRE.FindAllString(body, -1) {
		t.Errorf("tag %s needs the strict CSP to allow inline styles or scripts", tag)
	}
	for _, tag := range regexp.MustCompile(`<script[^>]*>`).FindAllString(body, -1) {
		if !strings.Contains(tag, ` src="/static/`) && tag != `<script type="application/json" id="channel-config">` {
			t.Errorf("inline script element %s", tag)
		}
	}
}

func TestIndexExplainsChannels(t *testing.T) {
	explain := []string{
		"Voice and video calls in your browser. Open a channel, see who is there, and call them.",
		"Sound and video go between the browsers in a call, not through this site; the site only passes on the messages that set a call up.",
		"No account is needed to call — only to create channels.",
		"Public channels",
	}
	tests := []struct {
		name       string
		signedIn   bool
		public     bool // whether a public channel exists
		want       []string
		wantNot    []string
		wantLink   string
		noNewLinks bool // no link to /channels/new anywhere
	}{
		{
			name:       "anonymous, public channels",
			public:     true,
			want:       []string{"Open one to join it. To join a private channel, open the link someone sent you.", hostileTopic, "Have an account? Sign in to create channels."},
			wantNot:    []string{"There are no public channels yet", "New channel"},
			wantLink:   `<p>Have an account? <a href="/signin">Sign in</a> to create channels.</p>`,
			noNewLinks: true,
		},
		{
			name:       "anonymous, no channels",
			want:       []string{"There are no public channels yet. To join a private channel, open the link someone sent you.", "Have an account? Sign in to create channels."},
			wantNot:    []string{"Open one to join it", "New channel"},
			noNewLinks: true,
		},
		{
			name:     "signed in",
			signedIn: true,
			public:   true,
			want:     []string{"Open one to join it.", hostileTopic, "New channel"},
			wantNot:  []string{"Sign in to create channels", "Have an account?"},
			wantLink: `<p><a href="/channels/new">New channel</a></p>`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSite(t, storetest.SQLite(t).Store, nil)
			b := s.browser()
			if tt.signedIn {
				s.user("ada", "correct horse", false)
				b.signIn("ada", "correct horse")
			}
			if tt.public {
				s.channel(hostileTopic, true, 0)
			}
			r := b.get("/")
			if r.status != http.StatusOK {
				t.Fatalf("status %d", r.status)
			}
			text := visibleText(t, r.body)
			for _, w := range append(explain, tt.want...) {
				if !strings.Contains(text, w) {
					t.Errorf("visible text lacks %q:\n%s", w, text)
				}
			}
			for _, w := range tt.wantNot {
				if strings.Contains(text, w) {
					t.Errorf("visible text has %q:\n%s", w, text)
				}
			}
			if tt.wantLink != "" && !strings.Contains(r.body, tt.wantLink) {
				t.Errorf("no %s in:\n%s", tt.wantLink, r.body)
			}
			if tt.noNewLinks && strings.Contains(r.body, `href="/channels/new"`) {
				t.Errorf("anonymous visitor offered a link to create a channel")
			}
			if tt.public && !strings.Contains(r.body, `">`+escapedTopic+`</a></li>`) {
				t.Errorf("topic not escaped in the list:\n%s", r.body)
			}
			if strings.Contains(r.body, hostileTopic) || strings.Contains(r.body, "<img") {
				t.Errorf("raw topic in the page:\n%s", r.body)
			}
			checkStrictPage(t, r.body)
		})
	}
}

func TestChannelPageSaysNoAccountNeeded(t *testing.T) {
	tests := []struct {
		name    string
		public  bool
		want    string
		wantNot string
	}{
		{"public", true, "Anyone with this link can join. No account needed.", "Only people with this link"},
		{"private", false, "Only people with this link can find this channel. No account needed to join.", "Anyone with this link"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSite(t, storetest.SQLite(t).Store, nil)
			ch := s.channel(hostileTopic, tt.public, 0)
			r := s.browser().get("/c/" + ch.ID)
			if r.status != http.StatusOK {
				t.Fatalf("status %d", r.status)
			}
			text := visibleText(t, r.body)
			// The note sits right under the topic.
			if want := hostileTopic + " " + tt.want; !strings.HasPrefix(text, want) {
				t.Errorf("visible text does not start with %q:\n%s", want, text)
			}
			if strings.Contains(text, tt.wantNot) {
				t.Errorf("visible text has %q:\n%s", tt.wantNot, text)
			}
			if want := `<h1>` + escapedTopic + `</h1>`; !strings.Contains(r.body, want) {
				t.Errorf("no %s in:\n%s", want, r.body)
			}
			if want := `<title>` + escapedTopic + ` · Channels</title>`; !strings.Contains(r.body, want) {
				t.Errorf("no %s in:\n%s", want, r.body)
			}
			// Escaped everywhere, the JSON configuration included.
			if strings.Contains(r.body, hostileTopic) || strings.Contains(r.body, "<img") {
				t.Errorf("raw topic in the page:\n%s", r.body)
			}
			if c := parseConfig(t, r.body); c.Topic != hostileTopic {
				t.Errorf("config topic %q, want %q", c.Topic, hostileTopic)
			}
			checkStrictPage(t, r.body)
		})
	}
}
