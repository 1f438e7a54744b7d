package fsapi

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"text/template"
	"unicode/utf8"
)

// fixed is a handler answering with a fixed template and data, or an error.
type fixed struct {
	pairs []Pair
	name  string
	err   error
	panic bool
	tmpl  *template.Template
}

const valueTemplate = `<document type="freeswitch/xml">
  <section name="{{xml .Name}}">
    <param name="v" value="{{.Value | xml}}"/>
    <text>{{xml .Value}}</text>
  </section>
</document>
`

func (f *fixed) Requires() []Pair { return f.pairs }

func (f *fixed) Process(_ context.Context, form url.Values) (Document, error) {
	if f.panic {
		panic("boom")
	}
	if f.err != nil {
		return Document{}, f.err
	}
	t := f.tmpl
	if t == nil {
		t = MustParseTemplate("value", valueTemplate)
	}
	return Document{Template: t, Data: struct{ Name, Value string }{f.name, form.Get("value")}}, nil
}

func form(kv ...string) url.Values {
	v := url.Values{}
	for i := 0; i < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return v
}

func TestRegistryFirstMatchWins(t *testing.T) {
	reg := NewRegistry(nil)
	reg.Add(&fixed{name: "dir-login", pairs: []Pair{{"section", "directory"}, {"action", "jsonrpc-authenticate"}}})
	reg.Add(&fixed{name: "dir-any", pairs: []Pair{{"section", "directory"}}})
	reg.Add(&fixed{name: "verto", pairs: []Pair{{"section", "configuration"}, {"key_value", "verto.conf"}}})
	reg.Add(&fixed{name: "never", pairs: []Pair{{"section", "directory"}, {"action", "jsonrpc-authenticate"}}})

	tests := []struct {
		name string
		form url.Values
		want string // section name of the answer; "" for not found
	}{
		{"both pairs: first handler", form("section", "directory", "action", "jsonrpc-authenticate"), "dir-login"},
		{"one pair: second handler", form("section", "directory", "action", "other"), "dir-any"},
		{"configuration", form("section", "configuration", "key_value", "verto.conf"), "verto"},
		{"other configuration", form("section", "configuration", "key_value", "acl.conf"), ""},
		{"nothing", form(), ""},
		{"value differs in case", form("section", "Directory"), ""},
		{"first value counts", form("section", "configuration", "section", "directory", "key_value", "verto.conf"), "verto"},
		{"later value ignored", form("section", "x", "section", "directory"), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := reg.Respond(context.Background(), tt.form)
			got := sectionName(t, out)
			want := tt.want
			if want == "" {
				want = "result"
				if !bytes.Equal(out, NotFound()) {
					t.Errorf("got %s, want the not-found document", out)
				}
			}
			if got != want {
				t.Errorf("answered by %q, want %q", got, want)
			}
		})
	}
}

func sectionName(t *testing.T, doc []byte) string {
	t.Helper()
	if !bytes.HasPrefix(doc, []byte(Declaration)) {
		t.Fatalf("no XML declaration: %s", doc)
	}
	var d struct {
		XMLName xml.Name
		Type    string `xml:"type,attr"`
		Section struct {
			Name string `xml:"name,attr"`
		} `xml:"section"`
	}
	if err := xml.Unmarshal(doc, &d); err != nil {
		t.Fatalf("%v: %s", err, doc)
	}
	if d.XMLName.Local != "document" || d.Type != "freeswitch/xml" {
		t.Fatalf("root %s type %q", d.XMLName.Local, d.Type)
	}
	return d.Section.Name
}

func TestRespondNotFoundPaths(t *testing.T) {
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	broken := template.Must(template.New("broken").Parse(`{{.Missing}}`))
	tests := []struct {
		name    string
		h       *fixed
		wantLog string
	}{
		{"ErrNotFound", &fixed{err: fmt.Errorf("user x: %w", ErrNotFound)}, "level=DEBUG"},
		{"other error", &fixed{err: errors.New("database down")}, "database down"},
		{"panic", &fixed{panic: true}, "boom"},
		{"template fails", &fixed{tmpl: broken}, "template failed"},
		{"no template", &fixed{tmpl: nil, err: nil, name: "x", pairs: nil, panic: false}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs.Reset()
			reg := NewRegistry(logger)
			tt.h.pairs = []Pair{{"k", "v"}}
			if tt.name == "no template" {
				reg.Add(noTemplate{})
			} else {
				reg.Add(tt.h)
			}
			out := reg.Respond(context.Background(), form("k", "v"))
			if !bytes.Equal(out, NotFound()) {
				t.Errorf("got %s, want not found", out)
			}
			if !strings.Contains(logs.String(), tt.wantLog) {
				t.Errorf("log %q lacks %q", logs.String(), tt.wantLog)
			}
		})
	}
}

type noTemplate struct{}

func (noTemplate) Requires() []Pair { return []Pair{{"k", "v"}} }
func (noTemplate) Process(context.Context, url.Values) (Document, error) {
	return Document{}, nil
}

func TestNotFoundIsFresh(t *testing.T) {
	a := NotFound()
	a[0] = 'X'
	if NotFound()[0] != '<' {
		t.Fatal("NotFound shares its bytes")
	}
}

// hostile values: everything that could break a document or FreeSWITCH's
// reading of it.
var hostile = []string{
	`"/><param name="password" value="x`,
	`'single' & "double"`,
	`<script>&amp;</script>`,
	"]]><![CDATA[",
	"tab\tnewline\ncr\r",
	"nul\x00bel\x07esc\x1b del\x7f",
	"bad utf8 \xff\xfe \xc3",
	"\uFFFE\uFFFF surrogate-ish \xed\xa0\x80",
	"ünïcödé 日本 🎉",
	"",
	strings.Repeat("&<>", 1000),
}

func TestHostileValuesEscaped(t *testing.T) {
	reg := NewRegistry(nil)
	reg.Add(&fixed{name: "n", pairs: []Pair{{"k", "v"}}})
	for _, v := range hostile {
		t.Run(fmt.Sprintf("%.20q", v), func(t *testing.T) {
			out := reg.Respond(context.Background(), form("k", "v", "value", v))
			var d struct {
				Section struct {
					Param struct {
						Value string `xml:"value,attr"`
					} `xml:"param"`
					Text string `xml:"text"`
				} `xml:"section"`
			}
			if err := xml.Unmarshal(out, &d); err != nil {
				t.Fatalf("not well-formed: %v\n%s", err, out)
			}
			var want strings.Builder
			for i := 0; i < len(v); {
				r, size := utf8.DecodeRuneInString(v[i:])
				i += size
				if !xmlChar(r) || (r == utf8.RuneError && size == 1) {
					r = utf8.RuneError
				}
				want.WriteRune(r)
			}
			if d.Section.Param.Value != want.String() || d.Section.Text != want.String() {
				t.Errorf("round trip: attr %q, text %q, want %q", d.Section.Param.Value, d.Section.Text, want.String())
			}
			if err := strictWellFormed(out); err != nil {
				t.Error(err)
			}
		})
	}
}

// strictWellFormed walks every token, which also checks characters.
func strictWellFormed(doc []byte) error {
	d := xml.NewDecoder(bytes.NewReader(doc))
	for {
		_, err := d.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: %q", err, doc)
		}
	}
}

func TestEscape(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain-uuid-1234", "plain-uuid-1234"},
		{`a&b<c>d"e'f`, "a&amp;b&lt;c&gt;d&quot;e&apos;f"},
		{"\t\n\r", "&#9;&#10;&#13;"},
		{"\x00\x1f", "\uFFFD\uFFFD"},
		{"\xff", "\uFFFD"},
		{"é", "é"},
		{"\uFFFE", "\uFFFD"},
	}
	for _, tt := range tests {
		if got := Escape(tt.in); got != tt.want {
			t.Errorf("Escape(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestParseTemplateDemandsEscaping(t *testing.T) {
	tests := []struct {
		text string
		ok   bool
	}{
		{`<a v="{{xml .}}"/>`, true},
		{`<a v="{{. | xml}}"/>`, true},
		{`<a v="{{printf "%s" . | xml}}"/>`, true},
		{`{{$x := .}}<a v="{{xml $x}}"/>`, true},
		{`{{if .}}<a v="{{xml .}}"/>{{else}}<b/>{{end}}`, true},
		{`{{range .}}<a v="{{xml .}}"/>{{end}}`, true},
		{`{{with .}}{{xml .}}{{end}}`, true},
		{`<a v="{{.}}"/>`, false},
		{`<a v="{{xml . | printf "%s"}}"/>`, false},
		{`{{if .}}{{.}}{{end}}`, false},
		{`{{if .}}{{else}}{{.}}{{end}}`, false},
		{`{{range .}}{{.}}{{end}}`, false},
		{`{{with .}}{{.}}{{end}}`, false},
		{`{{define "x"}}{{.}}{{end}}{{template "x" .}}`, false},
		{`{{`, false},
	}
	for _, tt := range tests {
		_, err := ParseTemplate("t", tt.text)
		if (err == nil) != tt.ok {
			t.Errorf("ParseTemplate(%q): err %v, want ok=%v", tt.text, err, tt.ok)
		}
	}
}
