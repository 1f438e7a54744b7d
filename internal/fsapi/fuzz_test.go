package fsapi

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
)

// FuzzRequest feeds arbitrary bodies through parsing, matching and
// rendering: a body either parses or is refused with 400, and every answer
// is a well-formed document that is either a handler's or the not-found
// one.
func FuzzRequest(f *testing.F) {
	for _, s := range []string{
		"section=directory&value=x",
		"section=directory&value=%3C%26%22%27%00%FF",
		"action=verto_client_login&login=a&secret=pw",
		"section=%zz",
		"a=1;b=2",
		"section=directory&section=configuration",
		"",
		"&&&==",
	} {
		f.Add([]byte(s))
	}
	f.Add([]byte("action=verto_client_login&secret=pw&value=%0D%0A"))
	h := testEndpoint(Options{Password: "pw"})
	reg := NewRegistry(nil)
	reg.Add(&fixed{name: "dir", pairs: []Pair{{"section", "directory"}}})
	f.Fuzz(func(t *testing.T, body []byte) {
		form, err := ParseForm(body)
		if err == nil {
			out := reg.Respond(context.Background(), form)
			if err := strictWellFormed(out); err != nil {
				t.Fatal(err)
			}
			matched := form.Get("section") == "directory"
			if matched == bytes.Equal(out, NotFound()) {
				t.Fatalf("matched %v but answer %s", matched, out)
			}
		}

		r := httptest.NewRequest(http.MethodPost, "/fsapi", bytes.NewReader(body))
		r.RemoteAddr = "127.0.0.1:1"
		r.SetBasicAuth("fs", "pw")
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		switch {
		case err != nil && w.Code != http.StatusBadRequest && w.Code != http.StatusRequestEntityTooLarge:
			t.Fatalf("malformed body answered %d", w.Code)
		case err == nil && w.Code != http.StatusOK && w.Code != http.StatusRequestEntityTooLarge:
			t.Fatalf("good body answered %d", w.Code)
		case w.Code == http.StatusOK:
			if err := strictWellFormed(w.Body.Bytes()); err != nil {
				t.Fatal(err)
			}
		}
	})
}
