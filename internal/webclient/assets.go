// Package webclient embeds the browser client of Channels (plain ES modules
// and the site's CSS) and serves it with content-hashed URLs, so browsers
// may cache every file forever.
//
// A file "verto.js" whose content hashes to 3f2a9c1e is served at
// /static/verto.3f2a9c1e.js. Relative module imports between the files
// ("./verto.js") are rewritten to the hashed names when the package is
// loaded, and a file's hash covers its rewritten content, so a change to a
// module changes the URL of every module that imports it, directly or not.
//
// Files are served minified by esbuild (whitespace, syntax and local
// identifiers; exported names are kept), once, when the package loads: the
// sources keep their JSDoc and formatting, and any valid ES2022 module or
// CSS may be written; a file esbuild cannot parse makes New fail. Imports
// are rewritten after minifying, and the hash covers the bytes served.
package webclient

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/evanw/esbuild/pkg/api"
)

//go:embed static/*.js static/*.css
var staticFS embed.FS

// Prefix is the path under which Handler serves the files.
const Prefix = "/static/"

// hashLen is the number of hex digits of a file's hash in its URL.
const hashLen = 8

// importRE finds static relative imports and re-exports of sibling modules:
// `from "./x.js"`, `import "./x.js"`, `import("./x.js")`.
var importRE = regexp.MustCompile(`(\bfrom\s*|\bimport\s*\(?\s*)(["'])\./([A-Za-z0-9_.-]+\.js)(["'])`)

// Asset is one served file.
type Asset struct {
	// Name is the file's plain name, e.g. "channel.js".
	Name string
	// HashedName is the name under Prefix, e.g. "channel.3f2a9c1e.js".
	HashedName string
	// ContentType is the Content-Type header value.
	ContentType string
	// Body is the content as served (minified, imports rewritten).
	Body []byte
	// imports are the plain names of the modules this one imports
	// statically, in order of appearance.
	imports []string
}

// Assets holds the embedded files, ready to serve. It is immutable and safe
// for concurrent use.
type Assets struct {
	byName   map[string]*Asset
	byHashed map[string]*Asset
}

// New loads the embedded files, minifies them, rewrites imports between
// modules and computes the hashed names. It takes a few tens of
// milliseconds, once per process.
func New() (*Assets, error) {
	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, fmt.Errorf("webclient: %w", err)
	}
	return load(sub)
}

// load builds Assets from the files at the top of fsys. Test files
// (*.test.js) and files of unknown types are left out.
func load(fsys fs.FS) (*Assets, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("webclient: read files: %w", err)
	}
	raw := map[string][]byte{}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || strings.HasSuffix(name, ".test.js") || contentType(name) == "" {
			continue
		}
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("webclient: read %s: %w", name, err)
		}
		raw[name] = b
	}
	// Minifying is most of the start-up cost and needs no other file (it
	// runs before imports are rewritten), so the files are minified in
	// parallel.
	names := make([]string, 0, len(raw))
	for n := range raw {
		names = append(names, n)
	}
	sort.Strings(names)
	mins := make([][]byte, len(names))
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, n := range names {
		wg.Go(func() { mins[i], errs[i] = minify(n, raw[n]) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for i, n := range names {
		raw[n] = mins[i]
	}
	a := &Assets{byName: map[string]*Asset{}, byHashed: map[string]*Asset{}}
	visiting := map[string]bool{}
	var build func(name string) (*Asset, error)
	build = func(name string) (*Asset, error) {
		if as, ok := a.byName[name]; ok {
			return as, nil
		}
		body, ok := raw[name]
		if !ok {
			return nil, fmt.Errorf("webclient: no file %q", name)
		}
		if visiting[name] {
			return nil, fmt.Errorf("webclient: import cycle through %s", name)
		}
		visiting[name] = true
		defer delete(visiting, name)
		// body is minified already; rewriting after minifying is safe, as
		// esbuild leaves import specifiers as written, no import in a
		// comment counts, and the hash below covers exactly the bytes served.
		var imports []string
		if strings.HasSuffix(name, ".js") {
			var ierr error
			body = importRE.ReplaceAllFunc(body, func(m []byte) []byte {
				sm := importRE.FindSubmatch(m)
				dep, err := build(string(sm[3]))
				if err != nil {
					if ierr == nil {
						ierr = fmt.Errorf("webclient: %s imports: %w", name, err)
					}
					return m
				}
				if !strings.Contains(string(sm[1]), "(") && !slices.Contains(imports, dep.Name) {
					imports = append(imports, dep.Name)
				}
				return []byte(string(sm[1]) + string(sm[2]) + "./" + dep.HashedName + string(sm[4]))
			})
			if ierr != nil {
				return nil, ierr
			}
		}
		sum := sha256.Sum256(body)
		ext := path.Ext(name)
		as := &Asset{
			Name:        name,
			HashedName:  strings.TrimSuffix(name, ext) + "." + hex.EncodeToString(sum[:])[:hashLen] + ext,
			ContentType: contentType(name),
			Body:        body,
			imports:     imports,
		}
		a.byName[name] = as
		a.byHashed[as.HashedName] = as
		return as, nil
	}
	for _, n := range names {
		if _, err := build(n); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// minify returns src minified by esbuild according to the file's type;
// other types are returned as they are. Only module-local names are
// renamed: with the ESM format, esbuild keeps every exported name (as
// `export{x as name}` when the local one was shortened).
func minify(name string, src []byte) ([]byte, error) {
	opts := api.TransformOptions{
		Sourcefile:        name,
		LogLevel:          api.LogLevelSilent,
		MinifyWhitespace:  true,
		MinifySyntax:      true,
		MinifyIdentifiers: true,
		Target:            api.ES2022,
		Charset:           api.CharsetUTF8,
		LegalComments:     api.LegalCommentsNone,
	}
	switch path.Ext(name) {
	case ".js":
		opts.Loader = api.LoaderJS
		opts.Format = api.FormatESModule
	case ".css":
		opts.Loader = api.LoaderCSS
	default:
		return src, nil
	}
	res := api.Transform(string(src), opts)
	if len(res.Errors) > 0 {
		msgs := make([]string, 0, len(res.Errors))
		for _, m := range res.Errors {
			if l := m.Location; l != nil {
				msgs = append(msgs, fmt.Sprintf("%s:%d:%d: %s", l.File, l.Line, l.Column, m.Text))
			} else {
				msgs = append(msgs, m.Text)
			}
		}
		return nil, fmt.Errorf("webclient: minify %s: %s", name, strings.Join(msgs, "; "))
	}
	return res.Code, nil
}

func contentType(name string) string {
	switch path.Ext(name) {
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	case ".png":
		return "image/png"
	case ".ico":
		return "image/x-icon"
	}
	return ""
}

// URL returns the content-hashed URL of the named file, e.g.
// URL("channel.js") = "/static/channel.3f2a9c1e.js", or "" when there is no
// such file.
func (a *Assets) URL(name string) string {
	as, ok := a.byName[name]
	if !ok {
		return ""
	}
	return Prefix + as.HashedName
}

// Imports returns the hashed URLs of every module the named module imports
// statically, directly or not, each once, in the order a browser meets them
// (depth first); nil for an unknown name. Pages list them as
// <link rel="modulepreload"> so the browser fetches the whole module graph
// at once instead of one level of imports per round trip.
func (a *Assets) Imports(name string) []string {
	var urls []string
	seen := map[string]bool{name: true}
	var walk func(n string)
	walk = func(n string) {
		as, ok := a.byName[n]
		if !ok {
			return
		}
		for _, d := range as.imports {
			if seen[d] {
				continue
			}
			seen[d] = true
			urls = append(urls, Prefix+a.byName[d].HashedName)
			walk(d)
		}
	}
	walk(name)
	return urls
}

// Names lists the plain names of all files, sorted.
func (a *Assets) Names() []string {
	names := make([]string, 0, len(a.byName))
	for n := range a.byName {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Asset returns the named file (plain name).
func (a *Assets) Asset(name string) (*Asset, bool) {
	as, ok := a.byName[name]
	return as, ok
}

// Handler serves the files by their hashed names with immutable, year-long
// caching. It accepts request paths with or without the /static/ prefix,
// so it works mounted at "/static/" with or without http.StripPrefix.
// Unknown names, including stale hashes, get 404.
func (a *Assets) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		name := strings.TrimPrefix(r.URL.Path, Prefix)
		name = strings.TrimPrefix(name, "/")
		as, ok := a.byHashed[name]
		if !ok {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		etag := `"` + strings.TrimSuffix(strings.TrimPrefix(as.HashedName, strings.TrimSuffix(as.Name, path.Ext(as.Name))+"."), path.Ext(as.Name)) + `"`
		h.Set("Content-Type", as.ContentType)
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("ETag", etag)
		if match := r.Header.Get("If-None-Match"); match != "" && strings.Contains(match, etag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		h.Set("Content-Length", strconv.Itoa(len(as.Body)))
		if r.Method == http.MethodHead {
			return
		}
		_, _ = w.Write(as.Body)
	})
}
