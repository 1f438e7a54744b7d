package webclient

import (
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
		"a.js":      {Data: []byte("import { b } from './b.js';\nimport \"./c.js\";\nexport * from './c.js';\nconst d = import('./c.js');\n")},
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
	if !strings.Contains(string(b.Body), `from "./`+c.HashedName+`"`) {
		t.Errorf("b.js not rewritten: %s", b.Body)
	}
	for _, want := range []string{"from './" + b.HashedName + "'", `import "./` + c.HashedName + `"`, "export * from './" + c.HashedName + "'", "import('./" + c.HashedName + "')"} {
		if !strings.Contains(string(aa.Body), want) {
			t.Errorf("a.js lacks %q:\n%s", want, aa.Body)
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

func TestCompact(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"line comments and indentation", "// head\n  const a = 1; // keep\n\n  // drop\n", "const a = 1; // keep\n"},
		{"jsdoc block", "/**\n * Doc.\n * @param {x} y\n */\nfunction f() {}\n", "function f() {}\n"},
		{"one-line block", "/** @type {number} */\nlet n = 0;\n", "let n = 0;\n"},
		{"css", "/* c */\nbody {\n  margin: 0;\n}\n", "body {\nmargin: 0;\n}\n"},
		{"url in string", "const u = 'http://x/y';\n", "const u = 'http://x/y';\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(compact([]byte(tt.in))); got != tt.want {
				t.Errorf("compact(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// TestServedModulesParse checks with Node, when it is installed, that every
// module still parses after compaction and rewriting.
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
			t.Errorf("%s does not parse after compaction: %v\n%s", n, err, out)
		}
	}
}

// TestChannelPageBudget keeps what the channel page loads (every module
// and the stylesheet) within 40 KiB.
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
	t.Logf("JS+CSS served: %d bytes", total)
	if total > 40*1024 {
		t.Errorf("JS+CSS = %d bytes, over the 40 KiB budget", total)
	}
}
