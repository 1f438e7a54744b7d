package fsapi

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
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
		// ParseForm is url.ParseQuery with fewer allocations.
		std, stdErr := url.ParseQuery(string(body))
		if (err == nil) != (stdErr == nil) {
			t.Fatalf("ParseForm error %v, url.ParseQuery error %v", err, stdErr)
		}
		if err == nil && !reflect.DeepEqual(form, std) {
			t.Fatalf("ParseForm %v, url.ParseQuery %v", form, std)
		}
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

func TestParseFormDuplicates(t *testing.T) {
	form, err := ParseForm([]byte("a=1&b=2&a=3&c=&d&a=4"))
	if err != nil {
		t.Fatal(err)
	}
	want := url.Values{"a": {"1", "3", "4"}, "b": {"2"}, "c": {""}, "d": {""}}
	if !reflect.DeepEqual(form, want) {
		t.Fatalf("got %v, want %v", form, want)
	}
}

func BenchmarkParseForm(b *testing.B) {
	body := []byte("Core-UUID=6526765d-ebdc-4e4a-a857-f3511bb7bad6&Event-Calling-File=mod_verto.c&Event-Calling-Function=check_auth&Event-Calling-Line-Number=1073&Event-Date-GMT=Tue%2C+24+Nov+2026+18%3A12%3A45+GMT&Event-Date-Local=2026-11-24+18%3A12%3A45&Event-Date-Timestamp=1795543965359401&Event-Name=REQUEST_PARAMS&Event-Sequence=360&FreeSWITCH-Hostname=vm&FreeSWITCH-IPv4=192.0.2.2&FreeSWITCH-IPv6=fd00%3A%3A2&FreeSWITCH-Switchname=vm&action=jsonrpc-authenticate&domain=channels.test&hostname=vm&key=id&key_name=name&key_value=channels.test&section=directory&tag_name=domain&user=3e1a6d2c-8f0b-4b6a-9c1d-2e3f4a5b6c7d")
	b.Run("ParseForm", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := ParseForm(body); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("url.ParseQuery", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := url.ParseQuery(string(body)); err != nil {
				b.Fatal(err)
			}
		}
	})
}
