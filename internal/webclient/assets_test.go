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
)

func TestEmbeddedAssets(t *testing.T) {
	a, err := New()
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	for _, name := range []string{"channel.js", "site.css", "verto.js"} {
		u := a.URL(name)
		if !regexp.MustCompile(`^/static/[a-z]+\.[0-9a-f]{8}\.(js|css)$`).MatchString(u) {
			t.Errorf("URL(%q) = %q, want /static/name.hash.ext", name, u)
		}
	}
	for _, n := range a.Names() {
		if strings.HasSuffix(n, ".test.js") {
			t.Errorf("test file %s is served", n)
		}
	}
	// Every relative import in every served module names a served file.
	ref := regexp.MustCompile(`(?:from|import)\s*\(?\s*["']\./([^"']+)["']`)
	for _, n := range a.Names() {
		as, _ := a.Asset(n)
		for _, m := range ref.FindAllSubmatch(as.Body, -1) {
			if _, ok := a.byHashed[string(m[1])]; !ok {
				t.Errorf("%s imports %s, which is not served", n, m[1])
			}
		}
	}
}

func TestImportRewriting(t *testing.T) {
	fsys := fstest.MapFS{
		"a.js":      {Data: []byte("// An import in a comment, import './nope.js', is no import.\nimport { b } from './b.js';\nimport \"./c.js\";\nexport * from './c.js';\nexport const d = import('./c.js'), e = b;\n")},
		"b.js":      {Data: []byte("import { c } from \"./c.js\";\nexport const b = c;\n")},
		"c.js":      {Data: []byte("export const c = 1;\n")},
		"x.test.js": {Data: []byte("import './a.js';\n")},
		"s.css":     {Data: []byte("body{}\n")},
		"notes.txt": {Data: []byte("not served\n")},
	}
	a, err := load(fsys)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if got := a.Names(); strings.Join(got, ",") != "a.js,b.js,c.js,s.css" {
		t.Fatalf("Names = %v", got)
	}
	c, _ := a.Asset("c.js")
	b, _ := a.Asset("b.js")
	aa, _ := a.Asset("a.js")
	if !strings.Contains(string(b.Body), `from"./`+c.HashedName+`"`) {
		t.Errorf("b.js not rewritten: %s", b.Body)
	}
	for _, want := range []string{`from"./` + b.HashedName + `"`, `import"./` + c.HashedName + `"`, `export*from"./` + c.HashedName + `"`, `import("./` + c.HashedName + `")`} {
		if !strings.Contains(string(aa.Body), want) {
			t.Errorf("a.js lacks %q:\n%s", want, aa.Body)
		}
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

	// Imports lists the static graph, each module once, depth first;
	// the dynamic import() is left for the module to fetch when it runs.
	for _, tt := range []struct{ name, want string }{
		{"a.js", a.URL("b.js") + "," + a.URL("c.js")},
		{"b.js", a.URL("c.js")},
		{"c.js", ""},
		{"nope.js", ""},
	} {
		if got := strings.Join(a.Imports(tt.name), ","); got != tt.want {
			t.Errorf("Imports(%s) = %q, want %q", tt.name, got, tt.want)
		}
	}
	lazy, err := load(fstest.MapFS{"l.js": {Data: []byte("const m = import('./m.js');\n")}, "m.js": {Data: []byte("export const m = 1;\n")}})
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if got := lazy.Imports("l.js"); len(got) != 0 {
		t.Errorf("Imports of a dynamic import = %v, want none", got)
	}

	// Changing a leaf changes the hash of every module importing it.
	fsys["c.js"] = &fstest.MapFile{Data: []byte("export const c = 2;\n")}
	a2, err := load(fsys)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	for _, n := range []string{"a.js", "b.js", "c.js"} {
		if a.URL(n) == a2.URL(n) {
			t.Errorf("URL(%s) did not change with c.js", n)
		}
	}
	if a.URL("s.css") != a2.URL("s.css") {
		t.Errorf("URL(s.css) changed")
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name string
		fsys fstest.MapFS
		want string
	}{
		{"missing import", fstest.MapFS{"a.js": {Data: []byte("import './nope.js';")}}, "no file"},
		{"cycle", fstest.MapFS{
			"a.js": {Data: []byte("import './b.js';")},
			"b.js": {Data: []byte("import './a.js';")},
		}, "cycle"},
		{"js syntax error", fstest.MapFS{"a.js": {Data: []byte("export const = 1;\n")}}, "minify a.js: a.js:1:13:"},
		{"syntax error in an import", fstest.MapFS{
			"a.js": {Data: []byte("import './b.js';")},
			"b.js": {Data: []byte("let x = {;")},
		}, "minify b.js"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := load(tt.fsys)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want containing %q", err, tt.want)
			}
		})
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

// TestMinify checks what minifying keeps: exported names (plain,
// renamed, default, re-exported), code whose local names are shortened,
// and literals that span lines or hold comment-like text, which a
// line-based minifier would break. Node runs the served modules when it
// is installed.
func TestMinify(t *testing.T) {
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
`)},
		"main.js": {Data: []byte(`import Greeter, { double, renamed, multi, url, re } from './lib.js';
export * from './lib.js';
export const out = {
  double: double(21), renamed, hello: new Greeter().hello(), multi, url, re,
};
`)},
		"s.css": {Data: []byte("/* a comment */\nbody {\n  margin: 0px;\n  color: #ffffff;\n}\n.x::after { content: \"é // x\"; }\n")},
	}
	a, err := load(fsys)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	lib, _ := a.Asset("lib.js")
	main, _ := a.Asset("main.js")
	css, _ := a.Asset("s.css")
	for _, tt := range []struct {
		name     string
		body     []byte
		has, not []string
	}{
		{"lib.js", lib.Body,
			[]string{"first line\n  // not a comment\n  /* nor this */\nlast", "http://example.com/a//b", "double", "renamed", "default"},
			[]string{"JSDoc", "trailing comment", "longParameterName", "intermediateResult", "  return"}},
		{"main.js", main.Body, []string{`from"./` + lib.HashedName + `"`, `export*from"./` + lib.HashedName + `"`}, []string{"./lib.js"}},
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
	if total, src := len(lib.Body)+len(main.Body), len(fsys["lib.js"].Data)+len(fsys["main.js"].Data); total >= src*2/3 {
		t.Errorf("minified JS is %d bytes of %d", total, src)
	}

	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node not installed")
	}
	dir := t.TempDir()
	for _, n := range a.Names() {
		as, _ := a.Asset(n)
		if err := os.WriteFile(filepath.Join(dir, as.HashedName), as.Body, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// .js files under a directory without package.json are CommonJS to
	// Node; the check script imports the served module as ESM by URL.
	script := `import(process.argv[1]).then(m => { const { out, ...rest } = m; out.exports = Object.keys(rest).sort(); console.log(JSON.stringify(out)); })`
	if err := os.WriteFile(filepath.Join(dir, "package.json"), []byte(`{"type":"module"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := exec.Command(node, "--input-type=module", "-e", script, "file://"+filepath.Join(dir, main.HashedName)).CombinedOutput()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, got)
	}
	want := `{"double":42,"renamed":"kept","hello":"hi","multi":"first line\n  // not a comment\n  /* nor this */\nlast","url":"http://example.com/a//b","re":"\\/\\*+","exports":["double","multi","re","renamed","url"]}`
	if strings.TrimSpace(string(got)) != want {
		t.Errorf("served modules evaluate to\n%s\nwant\n%s", got, want)
	}
}

// TestServedModulesParse checks with Node, when it is installed, that every
// module still parses after minifying and rewriting.
func TestServedModulesParse(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node not installed")
	}
	a, err := New()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, n := range a.Names() {
		as, _ := a.Asset(n)
		if err := os.WriteFile(filepath.Join(dir, as.HashedName), as.Body, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range a.Names() {
		as, _ := a.Asset(n)
		if !strings.HasSuffix(n, ".js") {
			continue
		}
		mjs := filepath.Join(dir, as.HashedName+".mjs")
		if err := os.WriteFile(mjs, as.Body, 0o600); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(node, "--check", mjs).CombinedOutput(); err != nil {
			t.Errorf("%s does not parse as served: %v\n%s", n, err, out)
		}
	}
}

// TestChannelPageBudget keeps what the channel page loads (every module
// and the stylesheet), as served (minified, uncompressed), within 40 KiB.
func TestChannelPageBudget(t *testing.T) {
	a, err := New()
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, n := range a.Names() {
		as, _ := a.Asset(n)
		total += len(as.Body)
	}
	t.Logf("JS+CSS served (minified): %d bytes of %d budget", total, 40*1024)
	if total > 40*1024 {
		t.Errorf("JS+CSS = %d bytes, over the 40 KiB budget", total)
	}
}
