// Package webclient embeds the browser client of Channels (ES modules and
// the site's CSS) and serves it with content-hashed URLs, so browsers may
// cache every file forever.
//
// Pages load entry points: modules named in entryPoints, each served as
// one bundle of itself and every module it imports, built by esbuild from
// the embedded files when the package loads. A module imported with
// import() is split off into a chunk of its own, which the bundle loads
// only when that import() runs (the channel page's camera check). A module
// that is only imported is not served on its own; a module that is
// neither an entry point nor imported by one makes New fail. Style sheets
// are served one for one. A file "channel.js" whose served bytes hash to
// 3f2a9c1e is served at /static/channel.3f2a9c1e.js, a chunk of check.js
// at /static/check.<hash>.js; a change to any module the bundle holds
// changes the bundle, and so its URL, and a change to a chunk changes the
// chunk's URL and with it the bundle's, which names it.
//
// Everything is minified by esbuild (whitespace, syntax, identifiers;
// across modules, since a bundle is one scope), once: the sources keep
// their JSDoc and formatting, Node's tests and tsc read them as written,
// and any valid ES2022 module or CSS may be written; a file esbuild cannot
// parse makes New fail with its file, line and column. Modules import
// each other by relative path only ("./verto.js"); any other import makes
// New fail, naming the importing file.
//
// Each file is also compressed once, with gzip and brotli at their best
// levels, and served in the coding the request's Accept-Encoding prefers
// (see Handler).
package webclient

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/http"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/evanw/esbuild/pkg/api"

	"channels/internal/compress"
)

//go:embed static/*.js static/*.css
var staticFS embed.FS

// entryPoints are the modules pages load with <script type="module">.
// They are listed, not inferred from the import graph as the modules no
// other one imports: a page names them by hand anyway, and with a list a
// module that lost its last importer is reported (New fails) instead of
// quietly becoming a page script of its own.
var entryPoints = []string{"channel.js"}

// Prefix is the path under which Handler serves the files.
const Prefix = "/static/"

// hashLen is the number of hex digits of a file's hash in its URL.
const hashLen = 8

// Asset is one served file.
type Asset struct {
	// Name is the file's plain name, e.g. "channel.js"; a chunk's is
	// that of the module split off ("check.js"), or "chunk.js" for code
	// shared by a bundle and its chunks.
	Name string
	// HashedName is the name under Prefix, e.g. "channel.3f2a9c1e.js".
	HashedName string
	// ContentType is the Content-Type header value.
	ContentType string
	// Body is the content as served (bundled and minified).
	Body []byte
	// Imports are the hashed names of the chunks this file imports with
	// import statements: a browser loading it loads them with it. Lazy
	// are those it imports with import(), loaded only when that runs.
	Imports, Lazy []string
	// etag is the identity representation's ETag.
	etag string
	// encoded are the compressed representations smaller than Body,
	// smallest first, and offers their codings in the same order.
	encoded []encoding
	offers  []string
}

// encoding is one compressed representation of an Asset.
type encoding struct {
	coding string // compress.Gzip or compress.Brotli
	body   []byte
	// etag differs from the identity representation's and the other
	// codings': each representation is its own sequence of bytes, and a
	// cache or a Range request's If-Range must never mix them.
	etag string
}

// Encoded returns the Asset's body compressed with coding (compress.Gzip
// or compress.Brotli), or nil when that representation is not served
// because it was no smaller than Body.
func (as *Asset) Encoded(coding string) []byte {
	for _, e := range as.encoded {
		if e.coding == coding {
			return e.body
		}
	}
	return nil
}

// Assets holds the embedded files, ready to serve. It is immutable and safe
// for concurrent use.
type Assets struct {
	byName   map[string]*Asset // entry points and style sheets
	byHashed map[string]*Asset // those and the chunks of the bundles
}

// New returns the embedded files ready to serve: entry points bundled,
// everything minified, hashed names computed and each file compressed.
// The work (about 0.1 s of CPU, mostly brotli at its best level; seconds
// under the race detector) is done on the first call only: the embedded
// files cannot change while the process runs, and Assets is immutable, so
// every server a process builds (tests build dozens) shares one.
func New() (*Assets, error) { return embedded() }

var embedded = sync.OnceValues(func() (*Assets, error) {
	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, fmt.Errorf("webclient: %w", err)
	}
	return load(sub, entryPoints)
})

// load builds Assets from the files at the top of fsys: a bundle for each
// of entries, every style sheet, and files of other known types as they
// are. Test files (*.test.js) and files of unknown types are left out.
func load(fsys fs.FS, entries []string) (*Assets, error) {
	dir, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("webclient: read files: %w", err)
	}
	var modules, others []string
	for _, e := range dir {
		name := e.Name()
		switch {
		case e.IsDir() || strings.HasSuffix(name, ".test.js") || contentType(name) == "":
		case path.Ext(name) == ".js":
			modules = append(modules, name)
		default:
			others = append(others, name)
		}
	}
	for _, n := range entries {
		if !slices.Contains(modules, n) {
			return nil, fmt.Errorf("webclient: entry point %s: no such module", n)
		}
	}
	// Bundling and minifying are most of the start-up cost and need no
	// other output, so all of them run at once.
	names := append(slices.Clone(entries), others...)
	files := make([][]*Asset, len(names))
	inputs := make([][]string, len(names))
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, n := range names {
		wg.Go(func() {
			if i < len(entries) {
				files[i], inputs[i], errs[i] = bundle(fsys, n)
				return
			}
			src, err := fs.ReadFile(fsys, n)
			if err != nil {
				errs[i] = fmt.Errorf("webclient: read %s: %w", n, err)
				return
			}
			body, err := minify(n, src)
			files[i], errs[i] = []*Asset{named(n, body)}, err
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	bundled := map[string]bool{}
	for _, in := range inputs {
		for _, n := range in {
			bundled[n] = true
		}
	}
	for _, n := range modules {
		if !bundled[n] {
			return nil, fmt.Errorf("webclient: %s is neither an entry point nor imported by one: import it, list it in entryPoints or delete it", n)
		}
	}
	a := &Assets{byName: map[string]*Asset{}, byHashed: map[string]*Asset{}}
	for i, name := range names {
		// The first file is the one named; the rest are its chunks,
		// served by hashed name only. Two bundles may hold the same chunk
		// (the same bytes, so the same name): it is served once.
		a.byName[name] = files[i][0]
		for _, as := range files[i] {
			a.byHashed[as.HashedName] = as
		}
	}
	if err := a.compress(); err != nil {
		return nil, err
	}
	return a, nil
}

// named returns the Asset for body served as name, under its hashed name:
// a file "channel.js" whose bytes hash to 3f2a9c1e… is "channel.3f2a9c1e.js".
func named(name string, body []byte) *Asset {
	sum := sha256.Sum256(body)
	hash := hex.EncodeToString(sum[:])[:hashLen]
	ext := path.Ext(name)
	return &Asset{
		Name:        name,
		HashedName:  strings.TrimSuffix(name, ext) + "." + hash + ext,
		etag:        `"` + hash + `"`,
		ContentType: contentType(name),
		Body:        body,
	}
}

// fsNamespace is esbuild's namespace for the files bundle reads from its
// fs.FS; no path in it is ever looked up on the disk.
const fsNamespace = "webclient"

// bundle returns the entry module and everything it imports, minified:
// first the entry point's file (named entry), holding it and every module
// it imports statically, then the chunks it loads later, one for each
// module it imports with import() (with what only that one uses). Code
// that both need goes to a shared chunk that the entry's file imports, so
// a lazily loaded module should import nothing the page already has (hand
// it in instead). It also returns the names of the modules read. The
// modules come from fsys alone, through a plugin: a relative import names
// a file beside the importer; anything else (a package name, an absolute
// path or URL, a file outside fsys or not a .js module) is an error naming
// the importing file.
func bundle(fsys fs.FS, entry string) ([]*Asset, []string, error) {
	var mu sync.Mutex
	var inputs []string
	plugin := api.Plugin{
		Name: "webclient-fs",
		Setup: func(b api.PluginBuild) {
			b.OnResolve(api.OnResolveOptions{Filter: `.*`}, func(args api.OnResolveArgs) (api.OnResolveResult, error) {
				if args.Kind == api.ResolveEntryPoint {
					return api.OnResolveResult{Path: args.Path, Namespace: fsNamespace}, nil
				}
				if !strings.HasPrefix(args.Path, "./") && !strings.HasPrefix(args.Path, "../") {
					return api.OnResolveResult{}, fmt.Errorf("import %q: only relative imports of the client's own modules (./name.js)", args.Path)
				}
				p := path.Join(path.Dir(args.Importer), args.Path)
				if !fs.ValidPath(p) || path.Ext(p) != ".js" || strings.HasSuffix(p, ".test.js") {
					return api.OnResolveResult{}, fmt.Errorf("import %q: not a module of the client", args.Path)
				}
				return api.OnResolveResult{Path: p, Namespace: fsNamespace}, nil
			})
			b.OnLoad(api.OnLoadOptions{Filter: `.*`, Namespace: fsNamespace}, func(args api.OnLoadArgs) (api.OnLoadResult, error) {
				src, err := fs.ReadFile(fsys, args.Path)
				if err != nil {
					return api.OnLoadResult{}, fmt.Errorf("no module %s", args.Path)
				}
				mu.Lock()
				inputs = append(inputs, args.Path)
				mu.Unlock()
				s := string(src)
				return api.OnLoadResult{Contents: &s, Loader: api.LoaderJS}, nil
			})
		},
	}
	res := api.Build(api.BuildOptions{
		EntryPoints: []string{entry},
		Bundle:      true,
		Write:       false,
		Plugins:     []api.Plugin{plugin},
		// Files are built in memory: the directory names no place on the
		// disk, and nothing is read from or written to it.
		AbsWorkingDir:     "/",
		Outdir:            "out",
		Splitting:         true,
		EntryNames:        "[name]",
		ChunkNames:        "[name]-[hash]",
		Metafile:          true,
		Platform:          api.PlatformBrowser,
		Format:            api.FormatESModule,
		Target:            api.ES2022,
		MinifyWhitespace:  true,
		MinifySyntax:      true,
		MinifyIdentifiers: true,
		Charset:           api.CharsetUTF8,
		LegalComments:     api.LegalCommentsNone,
		LogLevel:          api.LogLevelSilent,
	})
	if len(res.Errors) > 0 {
		return nil, nil, fmt.Errorf("webclient: bundle %s: %s", entry, messages(res.Errors))
	}
	files, err := hashNames(entry, res.OutputFiles, res.Metafile)
	if err != nil {
		return nil, nil, fmt.Errorf("webclient: bundle %s: %w", entry, err)
	}
	sort.Strings(inputs)
	return files, inputs, nil
}

// hashNames names esbuild's output files by the hash of their bytes, as
// every served file is named, and returns them, the entry point's first.
// esbuild names chunks by a hash of its own ("check-5XQ2ZJ7K.js"), which
// the files importing them name; a file's name is settled once those of
// the chunks it imports are and written into it, so the hash in each name
// covers exactly the bytes served, names of imported chunks included. A
// cycle of imports between files (possible only with import() both ways)
// cannot be named so, and is an error.
func hashNames(entry string, out []api.OutputFile, metafile string) ([]*Asset, error) {
	var meta struct {
		Outputs map[string]struct {
			Imports []struct{ Path, Kind string }
		}
	}
	if err := json.Unmarshal([]byte(metafile), &meta); err != nil {
		return nil, fmt.Errorf("metafile: %w", err)
	}
	type file struct {
		body          []byte
		imports, lazy []string // esbuild's names of the files imported
		as            *Asset   // once named
		visiting      bool
	}
	files := map[string]*file{}
	for _, o := range out {
		files[path.Base(o.Path)] = &file{body: o.Contents}
	}
	for p, o := range meta.Outputs {
		f := files[path.Base(p)]
		if f == nil {
			continue // a source map or another file not output
		}
		for _, im := range o.Imports {
			n := path.Base(im.Path)
			if files[n] == nil {
				return nil, fmt.Errorf("%s imports %s, not built", path.Base(p), im.Path)
			}
			list := &f.imports
			switch im.Kind {
			case "import-statement":
			case "dynamic-import":
				list = &f.lazy
			default:
				return nil, fmt.Errorf("%s imports %s by %s", path.Base(p), n, im.Kind)
			}
			if !slices.Contains(*list, n) {
				*list = append(*list, n)
			}
		}
	}
	var assets []*Asset
	var name func(n string) (*Asset, error)
	name = func(n string) (*Asset, error) {
		f := files[n]
		if f.as != nil {
			return f.as, nil
		}
		if f.visiting {
			return nil, fmt.Errorf("%s is in a cycle of imports between files: none can be named by the hash of its bytes", n)
		}
		f.visiting = true
		body := f.body
		rename := func(ns []string) ([]string, error) {
			var hashed []string
			for _, m := range ns {
				as, err := name(m)
				if err != nil {
					return nil, err
				}
				from, to := []byte(strconv.Quote("./"+m)), []byte(strconv.Quote("./"+as.HashedName))
				if !bytes.Contains(body, from) {
					return nil, fmt.Errorf("%s imports %s, whose name is not in it as %s", n, m, from)
				}
				body = bytes.ReplaceAll(body, from, to)
				hashed = append(hashed, as.HashedName)
			}
			return hashed, nil
		}
		imports, err := rename(f.imports)
		if err != nil {
			return nil, err
		}
		lazy, err := rename(f.lazy)
		if err != nil {
			return nil, err
		}
		plain := n
		if i := strings.LastIndexByte(n, '-'); n != entry && i > 0 {
			plain = n[:i] + path.Ext(n) // esbuild's "check-5XQ2ZJ7K.js" is served as "check.<hash>.js"
		}
		f.as = named(plain, body)
		f.as.Imports, f.as.Lazy = imports, lazy
		assets = append(assets, f.as)
		return f.as, nil
	}
	if files[entry] == nil {
		return nil, fmt.Errorf("no output file %s", entry)
	}
	first, err := name(entry)
	if err != nil {
		return nil, err
	}
	if len(assets) != len(files) {
		return nil, fmt.Errorf("%d output files, %d of them reached from %s", len(files), len(assets), entry)
	}
	// The entry's file first, then its chunks in the order named.
	return append([]*Asset{first}, slices.DeleteFunc(assets, func(as *Asset) bool { return as == first })...), nil
}

// minify returns a style sheet minified by esbuild; files of other types
// are returned as they are.
func minify(name string, src []byte) ([]byte, error) {
	if path.Ext(name) != ".css" {
		return src, nil
	}
	res := api.Transform(string(src), api.TransformOptions{
		Sourcefile:        name,
		Loader:            api.LoaderCSS,
		LogLevel:          api.LogLevelSilent,
		MinifyWhitespace:  true,
		MinifySyntax:      true,
		MinifyIdentifiers: true,
		Target:            api.ES2022,
		Charset:           api.CharsetUTF8,
		LegalComments:     api.LegalCommentsNone,
	})
	if len(res.Errors) > 0 {
		return nil, fmt.Errorf("webclient: minify %s: %s", name, messages(res.Errors))
	}
	return res.Code, nil
}

// messages formats esbuild's errors as file:line:col: text, the file by
// its name in the embedded files.
func messages(ms []api.Message) string {
	out := make([]string, 0, len(ms))
	for _, m := range ms {
		if l := m.Location; l != nil {
			out = append(out, fmt.Sprintf("%s:%d:%d: %s", strings.TrimPrefix(l.File, fsNamespace+":"), l.Line, l.Column, m.Text))
		} else {
			out = append(out, m.Text)
		}
	}
	return strings.Join(out, "; ")
}

// compress makes each Asset's gzip and brotli representations, all at
// once in parallel like minifying, and keeps those smaller than the
// identity body (a tiny file can grow).
func (a *Assets) compress() error {
	codings := []struct {
		name, suffix string
		level        int
	}{{compress.Gzip, "-gz", compress.GzipBest}, {compress.Brotli, "-br", compress.BrotliBest}}
	assets := a.Files()
	out := make([][]encoding, len(assets))
	errs := make([]error, len(assets)*len(codings))
	for i := range out {
		out[i] = make([]encoding, len(codings))
	}
	var wg sync.WaitGroup
	for i, as := range assets {
		for j, c := range codings {
			wg.Go(func() {
				b, err := compress.Bytes(c.name, c.level, as.Body)
				if err != nil {
					errs[i*len(codings)+j] = fmt.Errorf("webclient: %s: %w", as.Name, err)
					return
				}
				out[i][j] = encoding{coding: c.name, body: b, etag: strings.TrimSuffix(as.etag, `"`) + c.suffix + `"`}
			})
		}
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for i, as := range assets {
		for _, e := range out[i] {
			if len(e.body) < len(as.Body) {
				as.encoded = append(as.encoded, e)
			}
		}
		// Smallest first: the order Handler offers them in, so of the
		// codings a request weighs alike it gets the smallest.
		slices.SortStableFunc(as.encoded, func(x, y encoding) int { return len(x.body) - len(y.body) })
		for _, e := range as.encoded {
			as.offers = append(as.offers, e.coding)
		}
	}
	return nil
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

// Files returns every served file, the chunks of the bundles included,
// sorted by hashed name.
func (a *Assets) Files() []*Asset {
	files := make([]*Asset, 0, len(a.byHashed))
	for _, n := range slices.Sorted(maps.Keys(a.byHashed)) {
		files = append(files, a.byHashed[n])
	}
	return files
}

// Names lists the plain names of the files pages name (entry points and
// style sheets; not chunks), sorted.
func (a *Assets) Names() []string {
	names := make([]string, 0, len(a.byName))
	for n := range a.byName {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Asset returns the named file (plain name): an entry point's bundle or a
// style sheet.
func (a *Assets) Asset(name string) (*Asset, bool) {
	as, ok := a.byName[name]
	return as, ok
}

// Handler serves the files by their hashed names, the bundles' chunks
// alike, with immutable, year-long caching. It accepts request paths with or without the /static/ prefix,
// so it works mounted at "/static/" with or without http.StripPrefix.
// Unknown names, including stale hashes, get 404.
//
// The representation is chosen by Accept-Encoding (compress.Accept):
// brotli or gzip when accepted and smaller, else the identity bytes; every
// answer, 304s included, says Vary: Accept-Encoding, and each
// representation has its own ETag. Conditional requests and HEAD are
// answered by http.ServeContent. A request with a Range header always gets
// the identity representation, whose byte ranges ServeContent serves: a
// range of compressed bytes is of no use to a browser, and this way no
// client ever has to combine parts of two codings.
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
		h.Set("Content-Type", as.ContentType)
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Add("Vary", "Accept-Encoding")
		enc := as.choose(r)
		if enc == nil {
			h.Set("ETag", as.etag)
			http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(as.Body))
			return
		}
		h.Set("ETag", enc.etag)
		h.Set("Content-Encoding", enc.coding)
		// ServeContent leaves out Content-Length when Content-Encoding
		// is set; encodedWriter puts it back on a 200.
		http.ServeContent(encodedWriter{w, len(enc.body)}, r, "", time.Time{}, bytes.NewReader(enc.body))
	})
}

// choose returns the compressed representation to serve for r, or nil for
// the identity one.
func (as *Asset) choose(r *http.Request) *encoding {
	if len(as.encoded) == 0 || r.Header.Get("Range") != "" {
		return nil
	}
	coding := compress.ParseAccept(r.Header).Choose(as.offers...)
	for i := range as.encoded {
		if as.encoded[i].coding == coding {
			return &as.encoded[i]
		}
	}
	return nil
}

// encodedWriter sets Content-Length on a 200 response whose body is a
// compressed representation of n bytes, and takes back ServeContent's
// Accept-Ranges: ranges are served only from the identity representation.
type encodedWriter struct {
	http.ResponseWriter
	n int
}

func (e encodedWriter) WriteHeader(code int) {
	if code == http.StatusOK {
		e.Header().Set("Content-Length", strconv.Itoa(e.n))
		e.Header().Del("Accept-Ranges")
	}
	e.ResponseWriter.WriteHeader(code)
}
