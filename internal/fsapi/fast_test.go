package fsapi

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
	"text/template"
)

// TestParseFormLikeParseQuery: ParseForm, which unescapes in place and
// adds a new key with one map operation, gives url.ParseQuery's values and
// refusals — repeated keys anywhere, escapes in repeated keys, and the
// limit of 10000 fields — and leaves the caller's body as it was.
func TestParseFormLikeParseQuery(t *testing.T) {
	many := func(n int, field func(i int) string) string {
		fs := make([]string, n)
		for i := range fs {
			fs[i] = field(i)
		}
		return strings.Join(fs, "&")
	}
	for _, body := range []string{
		"a=1&a=2",
		"a=1&b=2&c=3&b=%41&a=x+y&d&b=&a=%2B",
		"%61=1&a=2&%61=%33",
		"k+1=v&k%201=w&k 1=x",
		"a=%zz&a=1",
		"a=1&b=%4",
		"a=1&b=2;c",
		"=&=&a",
		many(300, func(i int) string { return fmt.Sprintf("k%d=%d", i%7, i) }),
		many(300, func(i int) string { return fmt.Sprintf("k%d=v%%2B%d", i, i) }),
		many(maxFields, func(int) string { return "a=1" }),
		many(maxFields+1, func(int) string { return "a" }),
		many(maxFields+1, func(int) string { return "" }),
	} {
		name := body
		if len(name) > 40 {
			name = fmt.Sprintf("%s…(%d bytes)", name[:40], len(name))
		}
		t.Run(name, func(t *testing.T) {
			in := []byte(body)
			got, err := ParseForm(in)
			want, wantErr := url.ParseQuery(body)
			if (err == nil) != (wantErr == nil) {
				t.Fatalf("error %v, url.ParseQuery's %v", err, wantErr)
			}
			if err == nil && !reflect.DeepEqual(got, want) {
				t.Fatalf("got %v\nwant %v", got, want)
			}
			if string(in) != body {
				t.Fatal("ParseForm changed the caller's body")
			}
		})
	}
}

// TestBasicAuthLikeNetHTTP: the endpoint judges an Authorization header
// as r.BasicAuth parses it, without allocating: case of the scheme,
// colons in the password, malformed encodings, credentials longer than
// its buffer.
func TestBasicAuthLikeNetHTTP(t *testing.T) {
	long := strings.Repeat("p", 300)
	enc := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	for _, creds := range []struct{ user, pass string }{{"fs", "pw"}, {"fs", "a:b"}, {"us:er", "pw"}, {"fs", long}} {
		e := NewHandler(NewRegistry(nil), Options{User: creds.user, Password: creds.pass}).(*endpoint)
		for _, h := range []string{
			"Basic " + enc(creds.user+":"+creds.pass),
			"basic " + enc(creds.user+":"+creds.pass),
			"BASIC " + enc(creds.user+":"+creds.pass),
			"Basic  " + enc(creds.user+":"+creds.pass),
			"Basic " + enc(creds.user+":"+creds.pass+"x"),
			"Basic " + enc(creds.user+"x:"+creds.pass),
			"Basic " + enc(creds.user+creds.pass),
			"Basic " + enc("us:er:pw"),
			"Basic " + enc("fs:a:b"),
			"Basic " + enc("fs:"+long),
			"Basic " + enc("fs:"+long+"x"),
			"Basic " + enc(creds.user + ":" + creds.pass)[:4] + "!",
			"Basic " + strings.TrimRight(enc(creds.user+":"+creds.pass), "="),
			"Basic",
			"Bearer " + enc(creds.user+":"+creds.pass),
			"",
		} {
			r := httptest.NewRequest(http.MethodPost, "/fsapi", nil)
			r.Header.Set("Authorization", h)
			u, p, ok := r.BasicAuth()
			want := ok && u == creds.user && p == creds.pass
			if got := e.basicOK(r); got != want {
				t.Errorf("user %q password %q, header %q: basicOK %v, want %v", creds.user, creds.pass, h, got, want)
			}
		}
	}
	e := NewHandler(NewRegistry(nil), Options{User: "fs", Password: "pw"}).(*endpoint)
	r := httptest.NewRequest(http.MethodPost, "/fsapi", nil)
	r.SetBasicAuth("fs", "pw")
	if n := testing.AllocsPerRun(100, func() { e.basicOK(r) }); n != 0 {
		t.Errorf("basicOK allocates %v times", n)
	}
}

// TestAnswerMemoryReused: the endpoint renders into memory it reuses,
// and a later answer never shows through an earlier one, nor a longer
// earlier answer through a shorter later one.
func TestAnswerMemoryReused(t *testing.T) {
	reg := NewRegistry(nil)
	tmpl := MustParseTemplate("t", `<document id="{{xml .ID}}"/>`+"\n")
	reg.Add(echo{tmpl})
	h := NewHandler(reg, Options{User: "fs", Password: "pw"})
	for _, id := range []string{strings.Repeat("long", 50), "short", "", strings.Repeat("x", 20000), "after"} {
		r := httptest.NewRequest(http.MethodPost, "/fsapi", strings.NewReader(url.Values{"id": {id}}.Encode()))
		r.RemoteAddr = "127.0.0.1:1"
		r.SetBasicAuth("fs", "pw")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		want := Declaration + `<document id="` + id + `"/>` + "\n"
		if w.Body.String() != want {
			t.Fatalf("id %.20q: answer %.200q", id, w.Body.String())
		}
	}
}

// echo answers every request with its id field.
type echo struct{ tmpl *template.Template }

func (echo) Requires() []Pair { return nil }

func (e echo) Process(_ context.Context, form url.Values) (Document, error) {
	return Document{Template: e.tmpl, Data: struct{ ID string }{form.Get("id")}}, nil
}

// TestRenderAppends: a plan appends to the memory it is given.
func TestRenderAppends(t *testing.T) {
	var ps plans
	tmpl := MustParseTemplate("t", `<u id="{{xml .ID}}"/>`)
	dst := append(make([]byte, 0, 4), "old"...)
	got, ok := ps.render(dst[:0], "<?>", Document{Template: tmpl, Data: struct{ ID string }{"a&b"}})
	if !ok || !bytes.Equal(got, []byte(`<?><u id="a&amp;b"/>`)) {
		t.Fatalf("got %q, %v", got, ok)
	}
}

// TestRenderLikeRespond: Registry.Render gives what Respond sends, but
// the declaration, whether the template is planned or executed, and
// passes a rendered Body through.
func TestRenderLikeRespond(t *testing.T) {
	for _, text := range []string{`<document id="{{xml .ID}}"/>`, `{{if .ID}}<document id="{{xml .ID}}"/>{{end}}`} {
		reg := NewRegistry(nil)
		reg.Add(echo{MustParseTemplate("t", text)})
		form := url.Values{"id": {"a<b"}}
		doc, err := echo{MustParseTemplate("t", text)}.Process(context.Background(), form)
		if err != nil {
			t.Fatal(err)
		}
		got, err := reg.Render(doc)
		if err != nil || Declaration+string(got) != string(reg.Respond(context.Background(), form)) {
			t.Errorf("%s: Render %q, %v; Respond %q", text, got, err, reg.Respond(context.Background(), form))
		}
		if got, err := reg.Render(Document{Body: []byte("<x/>")}); err != nil || string(got) != "<x/>" {
			t.Errorf("Render of a Body: %q, %v", got, err)
		}
		if _, err := reg.Render(Document{}); err == nil {
			t.Error("Render without template: no error")
		}
	}
}

// TestReadBodyBounded: a body is read to its declared length and no
// further, whatever reads it: one that runs past it is refused rather
// than read on without bound.
func TestReadBodyBounded(t *testing.T) {
	for _, tt := range []struct {
		name   string
		body   string
		length int64
		want   string
		err    error
	}{
		{"as declared", "a=1&b=2", 7, "a=1&b=2", nil},
		{"shorter than declared", "a=1", 7, "a=1", nil},
		{"longer than declared", "a=1&b=2&c=3", 7, "", errLongerBody},
		{"length unknown", "a=1&b=2", -1, "a=1&b=2", nil},
		{"one more with the end", "a=1&b", 4, "", errLongerBody},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// A reader may return its last bytes with io.EOF.
			got, err := readBody(iotest.DataErrReader(strings.NewReader(tt.body)), tt.length, 1<<10)
			if err != tt.err || (err == nil && string(got) != tt.want) {
				t.Errorf("readBody = %q, %v; want %q, %v", got, err, tt.want, tt.err)
			}
		})
	}
}
