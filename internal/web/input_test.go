package web

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"

	"channels/internal/store/storetest"
)

// TestBadInput sends malformed ids, topics and form data to every form and
// URL parameter: each gets a 4xx page with a message, never a 500.
func TestBadInput(t *testing.T) {
	for _, b := range storetest.Stores(t) {
		t.Run(b.Name, func(t *testing.T) {
			s := newSite(t, b.Store, nil)
			owner := s.user("owner", "owner password", false)
			ch := s.channel("Lobby", true, owner.ID)
			unknown := uuid.NewString()
			long := strings.Repeat("x", MaxTopic+1)
			huge := "topic=" + strings.Repeat("x", maxFormBytes+1)
			form := "application/x-www-form-urlencoded"

			tests := []struct {
				name, method, path, ctype, body string
				signedIn                        bool
				status                          int
				message                         string
			}{
				{"id not a uuid", "GET", "/c/lobby", "", "", false, 404, "nothing here"},
				{"id upper case, POST", "POST", "/c/" + strings.ToUpper(ch.ID) + "/edit", form, "topic=x", true, 404, "nothing here"},
				{"id braces", "GET", "/c/{" + ch.ID + "}", "", "", false, 404, "nothing here"},
				{"id urn", "GET", "/c/urn:uuid:" + ch.ID, "", "", false, 404, "nothing here"},
				{"id unknown", "GET", "/c/" + unknown, "", "", false, 404, "nothing here"},
				{"id NUL", "GET", "/c/%00", "", "", false, 404, "nothing here"},
				{"id percent junk", "GET", "/c/%ff%fe", "", "", false, 404, "nothing here"},
				{"id very long", "GET", "/c/" + strings.Repeat("a", 5000), "", "", false, 404, "nothing here"},
				{"id with trailing path", "GET", "/c/" + ch.ID + "/x", "", "", false, 404, "nothing here"},
				{"unknown path", "GET", "/nope", "", "", false, 404, "nothing here"},
				{"wrong method", "DELETE", "/c/" + ch.ID, "", "", false, 404, "nothing here"},
				{"GET signout", "GET", "/signout", "", "", false, 404, "nothing here"},

				{"edit bad id", "GET", "/c/bad/edit", "", "", true, 404, "nothing here"},
				{"edit unknown id", "GET", "/c/" + unknown + "/edit", "", "", true, 404, "nothing here"},
				{"update bad id", "POST", "/c/bad/edit", form, "topic=x", true, 404, "nothing here"},
				{"update unknown id", "POST", "/c/" + unknown + "/edit", form, "topic=x", true, 404, "nothing here"},
				{"delete bad id", "POST", "/c/bad/delete", form, "", true, 404, "nothing here"},
				{"delete unknown id", "POST", "/c/" + unknown + "/delete", form, "", true, 404, "nothing here"},
				{"delete page unknown id", "GET", "/c/" + unknown + "/delete", "", "", true, 404, "nothing here"},

				{"create not signed in", "POST", "/channels", form, "topic=x", false, 401, "sign in"},
				{"new not signed in", "GET", "/channels/new", "", "", false, 303, "/signin?next="},
				{"list not signed in", "GET", "/channels", "", "", false, 303, "/signin?next="},
				{"edit not signed in", "GET", "/c/" + ch.ID + "/edit", "", "", false, 303, "/signin?next="},
				{"update not signed in", "POST", "/c/" + ch.ID + "/edit", form, "topic=x", false, 401, "sign in"},
				{"delete not signed in", "POST", "/c/" + ch.ID + "/delete", form, "", false, 401, "sign in"},

				{"create empty topic", "POST", "/channels", form, "topic=", true, 422, "must not be empty"},
				{"create no topic", "POST", "/channels", form, "public=on", true, 422, "must not be empty"},
				{"create blank topic", "POST", "/channels", form, "topic=+%09+", true, 422, "must not be empty"},
				{"create long topic", "POST", "/channels", form, "topic=" + long, true, 422, "at most 100"},
				{"create long topic multibyte", "POST", "/channels", form, "topic=" + url.QueryEscape(strings.Repeat("ü", MaxTopic+1)), true, 422, "at most 100"},
				{"create control char", "POST", "/channels", form, "topic=a%07b", true, 422, "control characters"},
				{"create newline", "POST", "/channels", form, "topic=a%0Ab", true, 422, "control characters"},
				{"create invalid utf-8", "POST", "/channels", form, "topic=%ff%fe", true, 400, "not valid text"},
				{"create topic twice", "POST", "/channels", form, "topic=a&topic=b", true, 400, "more than once"},
				{"create public=yes", "POST", "/channels", form, "topic=a&public=yes", true, 400, "must be"},
				{"create bad escape", "POST", "/channels", form, "topic=%zz", true, 400, "could not be read"},
				{"create oversized", "POST", "/channels", form, huge, true, 413, "too large"},
				{"create multipart", "POST", "/channels", "multipart/form-data; boundary=x", "--x--", true, 415, "URL-encoded"},
				{"create json", "POST", "/channels", "application/json", `{"topic":"a"}`, true, 415, "URL-encoded"},
				{"create bad content type", "POST", "/channels", ";;;", "topic=a", true, 415, "URL-encoded"},

				{"update empty topic", "POST", "/c/" + ch.ID + "/edit", form, "topic=", true, 422, "must not be empty"},
				{"update long topic", "POST", "/c/" + ch.ID + "/edit", form, "topic=" + long, true, 422, "at most 100"},
				{"update invalid utf-8", "POST", "/c/" + ch.ID + "/edit", form, "topic=%c3", true, 400, "not valid text"},
				{"update public twice", "POST", "/c/" + ch.ID + "/edit", form, "topic=a&public=on&public=on", true, 400, "more than once"},
				{"update oversized", "POST", "/c/" + ch.ID + "/edit", form, huge, true, 413, "too large"},
				{"delete oversized", "POST", "/c/" + ch.ID + "/delete", form, huge, true, 413, "too large"},
				{"delete bad escape", "POST", "/c/" + ch.ID + "/delete", form, "x=%", true, 400, "could not be read"},

				{"signin empty", "POST", "/signin", form, "", false, 400, "enter your name and password"},
				{"signin no password", "POST", "/signin", form, "name=owner", false, 400, "enter your name and password"},
				{"signin long name", "POST", "/signin", form, "password=x&name=" + strings.Repeat("n", 65), false, 400, "Wrong name or password"},
				{"signin long password", "POST", "/signin", form, "name=owner&password=" + strings.Repeat("p", 1025), false, 400, "Wrong name or password"},
				{"signin name twice", "POST", "/signin", form, "name=a&name=b&password=x", false, 400, "more than once"},
				{"signin invalid utf-8", "POST", "/signin", form, "name=%ff&password=x", false, 400, "not valid text"},
				{"signin bad escape", "POST", "/signin", form, "name=%", false, 400, "could not be read"},
				{"signin oversized", "POST", "/signin", form, huge, false, 413, "too large"},
				{"signin multipart", "POST", "/signin", "multipart/form-data; boundary=x", "--x--", false, 415, "URL-encoded"},
				{"signin wrong password", "POST", "/signin", form, "name=owner&password=wrong", false, 401, "Wrong name or password"},
				{"signin unknown user", "POST", "/signin", form, "name=nobody&password=wrong", false, 401, "Wrong name or password"},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					br := s.browser()
					br.t = t
					if tt.signedIn {
						br.signIn("owner", "owner password")
					}
					req, err := http.NewRequest(tt.method, s.ts.URL+tt.path, strings.NewReader(tt.body))
					if err != nil {
						t.Fatal(err)
					}
					if tt.ctype != "" {
						req.Header.Set("Content-Type", tt.ctype)
					}
					r := br.do(req)
					if r.status != tt.status {
						t.Errorf("status %d, want %d\n%s", r.status, tt.status, r.body)
					}
					if !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
						t.Errorf("Content-Type %q, want an HTML page", r.header.Get("Content-Type"))
					}
					if !strings.Contains(strings.ToLower(r.body), strings.ToLower(tt.message)) {
						t.Errorf("page lacks %q:\n%s", tt.message, r.body)
					}
				})
			}
			// None of it changed the channel.
			got, err := s.store.ChannelByID(t.Context(), ch.ID)
			if err != nil || got.Topic != "Lobby" || !got.Public {
				t.Errorf("channel after bad input = %+v, %v", got, err)
			}
		})
	}
}

// TestTopicBoundary: exactly MaxTopic characters is fine; surrounding
// space is trimmed.
func TestTopicBoundary(t *testing.T) {
	s := newSite(t, storetest.SQLite(t).Store, nil)
	s.user("u", "password", false)
	br := s.browser()
	br.signIn("u", "password")
	topic := strings.Repeat("ü", MaxTopic)
	r := br.post("/channels", url.Values{"topic": {"  " + topic + "  "}})
	if r.status != http.StatusSeeOther {
		t.Fatalf("status %d\n%s", r.status, r.body)
	}
	id := strings.TrimPrefix(r.header.Get("Location"), "/c/")
	ch, err := s.store.ChannelByID(t.Context(), id)
	if err != nil || ch.Topic != topic || ch.Public {
		t.Errorf("created %+v, %v", ch, err)
	}
}

func FuzzCheckTopic(f *testing.F) {
	for _, s := range []string{"", " ", "Lobby", strings.Repeat("x", 101), "a\x00b", "\xff", " ü "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		topic, err := CheckTopic(in)
		if err != nil {
			return
		}
		if topic == "" || topic != strings.TrimSpace(topic) || utf8.RuneCountInString(topic) > MaxTopic {
			t.Errorf("checkTopic(%q) accepted %q", in, topic)
		}
		if !utf8.ValidString(topic) || strings.ContainsFunc(topic, unicode.IsControl) {
			t.Errorf("CheckTopic(%q) accepted %q", in, topic)
		}
	})
}
