package webclient

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"channels/internal/compress"
)

// channelPage are the files the channel page loads: the layout's style
// sheet and its one entry point. internal/web's TestChannelPage checks that
// the rendered page refers to exactly these.
var channelPage = []string{"site.css", "channel.js"}

// relImport finds a relative import or re-export left in served code;
// its group is the path.
var relImport = regexp.MustCompile(`(?:\bfrom|\bimport)\s*\(?\s*["'](\.\.?/[^"']*)["']`)

// checkImports fails when a served file imports anything but the chunks
// it lists in Imports and Lazy, by their hashed names, all served.
func checkImports(t *testing.T, a *Assets) {
	t.Helper()
	for _, as := range a.Files() {
		listed := append(slices.Clone(as.Imports), as.Lazy...)
		var found []string
		for _, m := range relImport.FindAllSubmatch(as.Body, -1) {
			p := strings.TrimPrefix(string(m[1]), "./")
			if !slices.Contains(listed, p) {
				t.Errorf("%s imports %s, not a chunk it lists (%v)", as.HashedName, m[1], listed)
			}
			found = append(found, p)
		}
		for _, n := range listed {
			if _, ok := a.byHashed[n]; !ok || !slices.Contains(found, n) {
				t.Errorf("%s lists %s: served %v, imported in its code %v", as.HashedName, n, ok, slices.Contains(found, n))
			}
		}
	}
}

// firstVisit returns the files a page naming names loads at once (those,
// and the chunks they import statically, as imports go) and those loaded
// later, only when an import() runs (and what they import in turn), each
// once, in order.
func firstVisit(t *testing.T, a *Assets, names ...string) (first, later []*Asset) {
	t.Helper()
	seen := map[*Asset]bool{}
	var lazy []string
	var add func(as *Asset, to *[]*Asset)
	add = func(as *Asset, to *[]*Asset) {
		if seen[as] {
			return
		}
		seen[as] = true
		*to = append(*to, as)
		for _, n := range as.Imports {
			add(a.byHashed[n], to)
		}
		lazy = append(lazy, as.Lazy...)
	}
	for _, n := range names {
		as, ok := a.Asset(n)
		if !ok {
			t.Fatalf("%s is not served", n)
		}
		add(as, &first)
	}
	for len(lazy) > 0 {
		n := lazy[0]
		lazy = lazy[1:]
		add(a.byHashed[n], &later)
	}
	return first, later
}

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
	for _, n := range []string{"verto.js", "check.js", "group.js", "call.js", "chat.js", "moderate.js"} {
		if _, ok := a.Asset(n); ok {
			t.Errorf("%s, an imported module, is served on its own", n)
		}
	}
	for _, name := range a.Names() {
		u := a.URL(name)
		if !regexp.MustCompile(`^/static/[a-z]+\.[0-9a-f]{8}\.(js|css)$`).MatchString(u) {
			t.Errorf("URL(%q) = %q, want /static/name.hash.ext", name, u)
		}
	}
	// The camera check (check.js), the calls (group.js with call.js),
	// the chat (chat.js) and the managers' tools (moderate.js) are split
	// off into chunks that the channel page's bundle loads only with
	// import(); the bundle imports nothing at once.
	ch, _ := a.Asset("channel.js")
	lazy := regexp.MustCompile(`^check\.[0-9a-f]{8}\.js,group\.[0-9a-f]{8}\.js,chat\.[0-9a-f]{8}\.js,moderate\.[0-9a-f]{8}\.js$`)
	if len(ch.Imports) != 0 || !lazy.MatchString(strings.Join(ch.Lazy, ",")) {
		t.Errorf("channel.js imports %v at once and %v later; want only check, group, chat and moderate.<hash>.js, later", ch.Imports, ch.Lazy)
	}
	if n := len(a.Files()); n != 6 {
		t.Errorf("%d files served, want 6 (the bundle, its four chunks, the style sheet)", n)
	}
	checkImports(t, a)
}

// TestBundle checks what bundling keeps and drops: every module an entry
// imports (statically, for its side effects, through re-exports) is in
// its one file, and a module it imports with import() in a chunk of its
// own, named in the bundle by its hashed name; names are shortened across
// modules, comments and unused exports dropped; literals that span lines
// or hold comment-like text stay intact. Node runs the bundle, with its
// chunk beside it, when it is installed.
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
	if len(main.Imports) != 0 || len(main.Lazy) != 1 || !strings.HasPrefix(main.Lazy[0], "lazy.") {
		t.Fatalf("main.js imports %v at once, %v later; want lazy.<hash>.js later", main.Imports, main.Lazy)
	}
	lazy := a.byHashed[main.Lazy[0]]
	if n := len(a.Files()); n != 3 {
		t.Errorf("%d files served, want main.js, its chunk and s.css", n)
	}
	for _, tt := range []struct {
		name     string
		body     []byte
		has, not []string
	}{
		{"main.js", main.Body,
			[]string{"first line\n  // not a comment\n  /* nor this */\nlast", "http://example.com/a//b", "sideEffect", `import("./` + lazy.HashedName + `")`},
			[]string{"JSDoc", "trailing comment", "longParameterName", "intermediateResult", "localName", "  return", "UNUSED_MARKER", "loaded later"}},
		{"lazy chunk", lazy.Body, []string{"loaded later"}, []string{"sideEffect", "first line"}},
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
	checkImports(t, a)
	src := 0
	for _, n := range []string{"lib.js", "re.js", "side.js", "lazy.js", "main.js"} {
		src += len(fsys[n].Data)
	}
	if len(main.Body) >= src*2/3 {
		t.Errorf("bundle is %d bytes of %d", len(main.Body), src)
	}

	// A hashed name is the hash of the bytes served, so a cached copy is
	// always the copy the URL names.
	for _, as := range a.Files() {
		sum := sha256.Sum256(as.Body)
		if want := hex.EncodeToString(sum[:])[:hashLen]; as.HashedName != strings.TrimSuffix(as.Name, path.Ext(as.Name))+"."+want+path.Ext(as.Name) {
			t.Errorf("%s: hashed name %s, hash of served bytes %s", as.Name, as.HashedName, want)
		}
	}
	// A change to a module two imports deep changes the bundle's URL; a
	// change to the lazily loaded module changes its chunk's URL, and so
	// the bundle's, which names it; a change to a comment changes no byte
	// served, so no URL.
	for _, tt := range []struct {
		name, file, from, to string
		main, chunk          bool
	}{
		{"code", "lib.js", "'kept'", "'changed'", true, false},
		{"comment", "lib.js", "trailing comment", "another comment", false, false},
		{"code", "lazy.js", "'loaded later'", "'loaded much later'", true, true},
	} {
		changed := fstest.MapFS{}
		for k, v := range fsys {
			changed[k] = v
		}
		changed[tt.file] = &fstest.MapFile{Data: []byte(strings.Replace(string(fsys[tt.file].Data), tt.from, tt.to, 1))}
		a2, err := load(changed, []string{"main.js"})
		if err != nil {
			t.Fatalf("load: %v", err)
		}
		main2, _ := a2.Asset("main.js")
		if got := a.URL("main.js") != a2.URL("main.js"); got != tt.main {
			t.Errorf("%s changed in %s: main.js URL changed %v, want %v", tt.name, tt.file, got, tt.main)
		}
		if got := main.Lazy[0] != main2.Lazy[0]; got != tt.chunk {
			t.Errorf("%s changed in %s: the chunk's URL changed %v, want %v", tt.name, tt.file, got, tt.chunk)
		}
		if a.URL("s.css") != a2.URL("s.css") {
			t.Errorf("URL(s.css) changed")
		}
	}

	node := nodeOrSkip(t)
	dir := servedDir(t, a)
	file := filepath.Join(dir, main.HashedName)
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

// TestBundleSharedChunk: code that a bundle and a module it imports with
// import() both use goes to a shared chunk, which the bundle imports at
// once (so a first visit loads it too, and the budget counts it) and the
// lazy chunk imports as well; every name in the imports is the hashed one.
func TestBundleSharedChunk(t *testing.T) {
	fsys := fstest.MapFS{
		"util.js": {Data: []byte("export const both = () => 'USED_BY_BOTH';\nexport const lazyOnly = () => 'USED_LATER';\n")},
		"lazy.js": {Data: []byte("import { both, lazyOnly } from './util.js';\nexport const later = both() + lazyOnly();\n")},
		"page.js": {Data: []byte("import { both } from './util.js';\nglobalThis.out = [both(), (await import('./lazy.js')).later];\n")},
	}
	a, err := load(fsys, []string{"page.js"})
	if err != nil {
		t.Fatal(err)
	}
	page, _ := a.Asset("page.js")
	if len(page.Imports) != 1 || !strings.HasPrefix(page.Imports[0], "chunk.") || len(page.Lazy) != 1 || !strings.HasPrefix(page.Lazy[0], "lazy.") {
		t.Fatalf("page.js imports %v at once, %v later; want chunk.<hash>.js and lazy.<hash>.js", page.Imports, page.Lazy)
	}
	shared, lazy := a.byHashed[page.Imports[0]], a.byHashed[page.Lazy[0]]
	if !slices.Equal(lazy.Imports, page.Imports) || len(lazy.Lazy)+len(shared.Imports)+len(shared.Lazy) != 0 {
		t.Errorf("lazy chunk imports %v and %v, shared chunk %v and %v", lazy.Imports, lazy.Lazy, shared.Imports, shared.Lazy)
	}
	if !strings.Contains(string(shared.Body), "USED_BY_BOTH") || strings.Contains(string(page.Body), "USED_BY_BOTH") {
		t.Errorf("shared code not in the shared chunk alone:\n%s\n%s", shared.Body, page.Body)
	}
	checkImports(t, a)
	first, later := firstVisit(t, a, "page.js")
	if len(first) != 2 || first[0] != page || first[1] != shared || len(later) != 1 || later[0] != lazy {
		t.Errorf("first visit loads %d files, later %d; want page and shared chunk, then the lazy chunk", len(first), len(later))
	}

	node := nodeOrSkip(t)
	dir := servedDir(t, a)
	script := `await import(process.argv[1]); console.log(JSON.stringify(globalThis.out))`
	got, err := exec.Command(node, "--input-type=module", "-e", script, "file://"+filepath.Join(dir, page.HashedName)).CombinedOutput()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, got)
	}
	if want := `["USED_BY_BOTH","USED_BY_BOTHUSED_LATER"]`; strings.TrimSpace(string(got)) != want {
		t.Errorf("the bundle evaluates to %s, want %s", got, want)
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
		// Each file would name the other by the hash of its bytes.
		{"import() both ways", fstest.MapFS{
			"a.js": {Data: []byte("export const a = 1;\nimport('./b.js').then(console.log);\n")},
			"b.js": {Data: []byte("import('./a.js').then(console.log);\n")},
		}, nil, "bundle a.js: a.js is in a cycle of imports between files"},
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
	check := a.byHashed[as.Lazy[0]] // the camera check's chunk
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
		{"chunk", "GET", Prefix + check.HashedName, "", false, 200, "text/javascript; charset=utf-8"},
		{"chunk not modified", "GET", Prefix + check.HashedName, check.etag, false, 304, ""},
		{"chunk by plain name", "GET", "/static/check.js", "", false, 404, ""},
		{"chunk, stale hash", "GET", "/static/check.00000000.js", "", false, 404, ""},
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
// finds nothing. The bundle must parse as a module, need no other file
// (its chunks are loaded only by an import() that runs later, as the
// camera check's on a click), and run its top level (every module's, then
// the entry's) without an error as far as looking up its page. Then each
// chunk is run, beside the files it imports: it must parse, load and
// export what the bundle imports it for.
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

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "package.json"), []byte(`{"type":"module"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	var chunks []*Asset
	for _, as := range a.Files() {
		if err := os.WriteFile(filepath.Join(dir, as.HashedName), as.Body, 0o600); err != nil {
			t.Fatal(err)
		}
		if as != a.byName[as.Name] {
			chunks = append(chunks, as)
		}
	}
	if len(chunks) == 0 {
		t.Fatal("no chunks served")
	}
	for _, as := range chunks {
		out, err := exec.Command(node, "--input-type=module", "-e", `console.log(Object.keys(await import(process.argv[1])).join())`, "file://"+filepath.Join(dir, as.HashedName)).CombinedOutput()
		if err != nil {
			t.Errorf("chunk %s does not load: %v\n%s", as.HashedName, err, out)
			continue
		}
		if as.Name == "check.js" && strings.TrimSpace(string(out)) != "preview" {
			t.Errorf("the camera check's chunk exports %s, want preview", out)
		}
	}
}

// TestChannelPageBudget keeps what a first visit to the channel page
// loads, as served (minified), within 40 KiB uncompressed: the style sheet,
// its entry point's bundle and any chunk the bundle imports statically
// (which the browser loads with it). Chunks loaded only by import(), such
// as the camera check on a click, are not part of a first visit: their
// sizes are logged apart. It logs what each transfers compressed.
func TestChannelPageBudget(t *testing.T) {
	a, err := New()
	if err != nil {
		t.Fatal(err)
	}
	first, later := firstVisit(t, a, channelPage...)
	sum := func(what string, files []*Asset) (total int) {
		gz, br := 0, 0
		for _, as := range files {
			total += len(as.Body)
			gz += len(servedAs(as, compress.Gzip))
			br += len(servedAs(as, compress.Brotli))
			t.Logf("%-20s %6d bytes, gzip %6d, brotli %6d", as.HashedName, len(as.Body), len(servedAs(as, compress.Gzip)), len(servedAs(as, compress.Brotli)))
		}
		t.Logf("%s, %d requests: %d bytes; gzip %d, brotli %d", what, len(files), total, gz, br)
		return total
	}
	total := sum("channel page JS+CSS at first visit", first)
	t.Logf("%d bytes of the %d budget: %d left", total, 40*1024, 40*1024-total)
	sum("loaded on demand (import())", later)
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
// servedDir writes the served files, by their hashed names, into a new
// directory Node runs as ES modules: only they are there, so an import
// left in them of anything else fails.
func servedDir(t *testing.T, a *Assets) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "package.json"), []byte(`{"type":"module"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, as := range a.Files() {
		if err := os.WriteFile(filepath.Join(dir, as.HashedName), as.Body, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

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
