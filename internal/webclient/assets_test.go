package webclient

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"

	"channels/internal/compress"
)

// channelPage are the files the channel page loads: the layout's style
// sheet and its one entry point. internal/web's TestChannelPage checks that
// the rendered page refers to exactly these.
var channelPage = []string{"site.css", "channel.js"}

// relImport finds a relative import or re-export left in served code.
var relImport = regexp.MustCompile(`(?:\bfrom|\bimport)\s*\(?\s*["']\.\.?/`)

func TestEmbeddedAssets(t *testing.T) {
	a, err := New()
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	// Entry points and style sheets are served; modules only imported
	// are inside the bundles, not served on their own.
	if got, want := strings.Join(a.Names(), ","), "channel.js,site.css"; got != want {
		t.Errorf("Names = %s, want %s", got, want)
	}
	if _, ok := a.Asset("verto.js"); ok {
		t.Errorf("verto.js, an imported module, is served on its own")
	}
	for _, name := range a.Names() {
		u := a.URL(name)
		if !regexp.MustCompile(`^/static/[a-z]+\.[0-9a-f]{8}\.(js|css)$`).MatchString(u) {
			t.Errorf("URL(%q) = %q, want /static/name.hash.ext", name, u)
		}
		as, _ := a.Asset(name)
		if m := relImport.Find(as.Body); m != nil {
			t.Errorf("%s still imports: %s", name, m)
		}
	}
}

// TestBundle checks what bundling keeps and drops: every module an entry
// imports (statically, for its side effects, through re-exports and
// dynamically) is in its one file; names are shortened across modules,
// comments and unused exports dropped; literals that span lines or hold
// comment-like text stay intact. Node runs the bundle when it is
// installed.
func TestBundle(t *testing.T) {
	fsys := fstest.MapFS{
		"lib.js": {Data: []byte(`/**
 * A module with JSDoc, as the sources are written.
 * @param {number} longParameterName
 */
export function double(longParameterName) {
  const intermediateResult = longParameterName * 2; // trailing comment
  return intermediateResult;
}
const localName = 'kept';
export { localName as renamed };
export default class Greeter {
  hello() { return "hi"; }
}
export const multi = ` + "`first line\n  // not a comment\n  /* nor this */\nlast`" + `;
export const url = 'http://example.com/a//b';
export const re = /\/\*+/g.source;
export function unusedExport() { return 'UNUSED_MARKER'; }
`)},
		"re.js":   {Data: []byte("export * from './lib.js';\nexport { default as Greeter } from './lib.js';\n")},
		"side.js": {Data: []byte("globalThis.sideEffect = 'ran';\n")},
		"lazy.js": {Data: []byte("export const lazy = 'loaded later';\n")},
		"main.js": {Data: []byte(`import './side.js';
import { Greeter, double, renamed, multi, url, re } from './re.js';
export const out = {
  double: double(21), renamed, hello: new Greeter().hello(), multi, url, re,
  side: globalThis.sideEffect, lazy: (await import('./lazy.js')).lazy,
};
`)},
		"x.test.js": {Data: []byte("import './nope.js';\n")},
		"s.css":     {Data: []byte("/* a comment */\nbody {\n  margin: 0px;\n  color: #ffffff;\n}\n.x::after { content: \"é // x\"; }\n")},
		"notes.txt": {Data: []byte("not served\n")},
	}
	a, err := load(fsys, []string{"main.js"})
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if got := a.Names(); strings.Join(got, ",") != "main.js,s.css" {
		t.Fatalf("Names = %v", got)
	}
	main, _ := a.Asset("main.js")
	css, _ := a.Asset("s.css")
	for _, tt := range []struct {
		name     string
		body     []byte
		has, not []string
	}{
		{"main.js", main.Body,
			[]string{"first line\n  // not a comment\n  /* nor this */\nlast", "http://example.com/a//b", "loaded later", "sideEffect"},
			[]string{"JSDoc", "trailing comment", "longParameterName", "intermediateResult", "localName", "  return", "UNUSED_MARKER"}},
		{"s.css", css.Body, []string{`"é // x"`}, []string{"a comment", "  ", "margin: 0", "#ffffff"}},
	} {
		for _, s := range tt.has {
			if !strings.Contains(string(tt.body), s) {
				t.Errorf("%s lacks %q:\n%s", tt.name, s, tt.body)
			}
		}
		for _, s := range tt.not {
			if strings.Contains(string(tt.body), s) {
				t.Errorf("%s still has %q:\n%s", tt.name, s, tt.body)
			}
		}
	}
	if m := relImport.Find(main.Body); m != nil {
		t.Errorf("main.js still imports: %s", m)
	}
	src := 0
	for _, n := range []string{"lib.js", "re.js", "side.js", "lazy.js", "main.js"} {
		src += len(fsys[n].Data)
	}
	if len(main.Body) >= src*2/3 {
		t.Errorf("bundle is %d bytes of %d", len(main.Body), src)
	}

	// A hashed name is the hash of the bytes served, so a cached copy is
	// always the copy the URL names.
	for _, n := range a.Names() {
		as, _ := a.Asset(n)
		sum := sha256.Sum256(as.Body)
		if want := hex.EncodeToString(sum[:])[:hashLen]; !strings.Contains(as.HashedName, "."+want+".") {
			t.Errorf("%s: hashed name %s, hash of served bytes %s", n, as.HashedName, want)
		}
	}
	// A change to a module two imports deep changes the bundle's URL; a
	// change to a comment changes no byte served, so no URL.
	for _, tt := range []struct {
		name, from, to string
		changes        bool
	}{
		{"code", "'kept'", "'changed'", true},
		{"comment", "trailing comment", "another comment", false},
	} {
		changed := fstest.MapFS{}
		for k, v := range fsys {
			changed[k] = v
		}
		changed["lib.js"] = &fstest.MapFile{Data: []byte(strings.Replace(string(fsys["lib.js"].Data), tt.from, tt.to, 1))}
		a2, err := load(changed, []string{"main.js"})
		if err != nil {
			t.Fatalf("load: %v", err)
		}
		if got := a.URL("main.js") != a2.URL("main.js"); got != tt.changes {
			t.Errorf("%s changed in lib.js: main.js URL changed %v, want %v", tt.name, got, tt.changes)
		}
		if a.URL("s.css") != a2.URL("s.css") {
			t.Errorf("URL(s.css) changed")
		}
	}

	node := nodeOrSkip(t)
	dir := t.TempDir()
	// Only the bundle is there: an import left in it would fail.
	file := filepath.Join(dir, "main.mjs")
	if err := os.WriteFile(file, main.Body, 0o600); err != nil {
		t.Fatal(err)
	}
	script := `import(process.argv[1]).then(m => console.log(JSON.stringify(m.out)))`
	got, err := exec.Command(node, "--input-type=module", "-e", script, "file://"+file).CombinedOutput()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, got)
	}
	want := `{"double":42,"renamed":"kept","hello":"hi","multi":"first line\n  // not a comment\n  /* nor this */\nlast","url":"http://example.com/a//b","re":"\\/\\*+","side":"ran","lazy":"loaded later"}`
	if strings.TrimSpace(string(got)) != want {
		t.Errorf("the bundle evaluates to\n%s\nwant\n%s", got, want)
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name    string
		fsys    fstest.MapFS
		entries []string
		want    string
	}{
		{"package import", fstest.MapFS{"a.js": {Data: []byte("import x from 'lodash';\nx();\n")}},
			nil, `bundle a.js: a.js:1:14: import "lodash": only relative imports`},
		{"absolute path", fstest.MapFS{"a.js": {Data: []byte("\n\nimport '/etc/passwd';\n")}},
			nil, `a.js:3:7: import "/etc/passwd": only relative imports`},
		{"dynamic import of a URL", fstest.MapFS{"a.js": {Data: []byte("import('https://cdn.example/m.js');\n")}},
			nil, `a.js:1:7: import "https://cdn.example/m.js": only relative imports`},
		{"outside the files", fstest.MapFS{"a.js": {Data: []byte("import '../up.js';\n")}},
			nil, `a.js:1:7: import "../up.js": not a module of the client`},
		{"style sheet", fstest.MapFS{"a.js": {Data: []byte("import './s.css';\n")}, "s.css": {Data: []byte("a{}")}},
			nil, `a.js:1:7: import "./s.css": not a module of the client`},
		{"missing module", fstest.MapFS{"a.js": {Data: []byte("import './nope.js';\n")}},
			nil, `a.js:1:7: no module nope.js`},
		{"js syntax error", fstest.MapFS{"a.js": {Data: []byte("export const = 1;\n")}},
			nil, "bundle a.js: a.js:1:13: "},
		{"syntax error in an import", fstest.MapFS{
			"a.js": {Data: []byte("import './b.js';")},
			"b.js": {Data: []byte("let x = {;")},
		}, nil, "bundle a.js: b.js:1:9: "},
		{"module nothing imports", fstest.MapFS{
			"a.js": {Data: []byte("new Worker(new URL('./w.js', import.meta.url));\n")},
			"w.js": {Data: []byte("postMessage(1);\n")},
		}, nil, "w.js is neither an entry point nor imported by one"},
		{"no such entry point", fstest.MapFS{"a.js": {Data: []byte("")}}, []string{"a.js", "b.js"}, "entry point b.js: no such module"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.entries == nil {
				tt.entries = []string{"a.js"}
			}
			_, err := load(tt.fsys, tt.entries)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want containing %q", err, tt.want)
			}
		})
	}
	// Modules may import each other in a cycle, as ES modules may.
	if _, err := load(fstest.MapFS{
		"a.js": {Data: []byte("import { b } from './b.js'; export const a = 1; console.log(b);")},
		"b.js": {Data: []byte("import { a } from './a.js'; export const b = () => a;")},
	}, []string{"a.js"}); err != nil {
		t.Errorf("import cycle: %v", err)
	}
}

func TestHandler(t *testing.T) {
	a, err := New()
	if err != nil {
		t.Fatal(err)
	}
	js := a.URL("channel.js")
	css := a.URL("site.css")
	as, _ := a.Asset("channel.js")
	tests := []struct {
		name, method, path, inm string
		strip                   bool
		code                    int
		ctype                   string
	}{
		{"js", "GET", js, "", false, 200, "text/javascript; charset=utf-8"},
		{"css", "GET", css, "", false, 200, "text/css; charset=utf-8"},
		{"stripped prefix", "GET", js, "", true, 200, "text/javascript; charset=utf-8"},
		{"head", "HEAD", js, "", false, 200, "text/javascript; charset=utf-8"},
		{"not modified", "GET", js, `"` + as.HashedName[len("channel."):len("channel.")+hashLen] + `"`, false, 304, "text/javascript; charset=utf-8"},
		{"plain name", "GET", "/static/channel.js", "", false, 404, ""},
		{"stale hash", "GET", "/static/channel.00000000.js", "", false, 404, ""},
		{"imported module", "GET", "/static/verto.js", "", false, 404, ""},
		{"test file", "GET", "/static/presence.test.js", "", false, 404, ""},
		{"post", "POST", js, "", false, 405, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h http.Handler = a.Handler()
			if tt.strip {
				h = http.StripPrefix("/static/", h)
			}
			mux := http.NewServeMux()
			mux.Handle("/static/", h)
			req := httptest.NewRequest(tt.method, tt.path, nil)
			if tt.inm != "" {
				req.Header.Set("If-None-Match", tt.inm)
			}
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, req)
			if rec.Code != tt.code {
				t.Fatalf("code = %d, want %d", rec.Code, tt.code)
			}
			if tt.code != 200 && tt.code != 304 {
				return
			}
			// A 304 carries no representation metadata (RFC 9110
			// section 15.4.5), Content-Type included.
			if tt.code == 304 {
				tt.ctype = ""
			}
			if got := rec.Header().Get("Content-Type"); got != tt.ctype {
				t.Errorf("Content-Type = %q, want %q", got, tt.ctype)
			}
			if got := rec.Header().Get("Cache-Control"); got != "public, max-age=31536000, immutable" {
				t.Errorf("Cache-Control = %q", got)
			}
			if tt.method == "GET" && tt.code == 200 && rec.Body.Len() == 0 {
				t.Errorf("empty body")
			}
			if tt.method == "HEAD" && rec.Body.Len() != 0 {
				t.Errorf("HEAD has a body")
			}
		})
	}
}

// TestServedBundlesRun runs each served bundle in Node, alone in a
// directory, with the least of a DOM: a document whose getElementById
// finds nothing. The bundle must parse as a module, need no other file,
// and run its top level (every module's, then the entry's) without an
// error as far as looking up its page.
func TestServedBundlesRun(t *testing.T) {
	node := nodeOrSkip(t)
	a, err := New()
	if err != nil {
		t.Fatal(err)
	}
	script := `const ids = [];
globalThis.document = { getElementById(id) { ids.push(id); return null; } };
await import(process.argv[1]);
console.log(JSON.stringify(ids));`
	for _, n := range entryPoints {
		as, ok := a.Asset(n)
		if !ok {
			t.Fatalf("entry point %s is not served", n)
		}
		file := filepath.Join(t.TempDir(), as.HashedName+".mjs")
		if err := os.WriteFile(file, as.Body, 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(node, "--input-type=module", "-e", script, "file://"+file).CombinedOutput()
		if err != nil {
			t.Errorf("%s does not run as served: %v\n%s", n, err, out)
			continue
		}
		if s := strings.TrimSpace(string(out)); s == "[]" || !strings.HasPrefix(s, `["`) {
			t.Errorf("%s did not look up its page's elements: %s", n, out)
		}
	}
}

// TestChannelPageBudget keeps what the channel page loads (its entry
// point's bundle and the style sheet), as served (minified), within
// 40 KiB uncompressed, and logs what it transfers compressed.
func TestChannelPageBudget(t *testing.T) {
	a, err := New()
	if err != nil {
		t.Fatal(err)
	}
	total, gz, br := 0, 0, 0
	for _, n := range channelPage {
		as, ok := a.Asset(n)
		if !ok {
			t.Fatalf("%s is not served", n)
		}
		total += len(as.Body)
		gz += len(servedAs(as, compress.Gzip))
		br += len(servedAs(as, compress.Brotli))
		t.Logf("%-10s %6d bytes, gzip %6d, brotli %6d", n, len(as.Body), len(servedAs(as, compress.Gzip)), len(servedAs(as, compress.Brotli)))
	}
	t.Logf("channel page JS+CSS, %d requests: %d bytes of %d budget; gzip %d, brotli %d", len(channelPage), total, 40*1024, gz, br)
	if total > 40*1024 {
		t.Errorf("JS+CSS = %d bytes, over the 40 KiB budget", total)
	}
}

// servedAs is the body a request accepting only coding gets.
func servedAs(as *Asset, coding string) []byte {
	if b := as.Encoded(coding); b != nil {
		return b
	}
	return as.Body
}

// nodeOrSkip returns the path of node; without it the test is skipped,
// unless it runs in CI, where it fails.
func nodeOrSkip(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("node not installed: %v", err)
		}
		t.Skip("node not installed")
	}
	return node
}
