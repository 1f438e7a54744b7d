package web

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"

	"channels/internal/store"
)

//go:embed templates
var templateFS embed.FS

// view is what every page template receives.
type view struct {
	Title string
	// User is the signed-in user, or nil.
	User *store.User
	// Data is the page's own data.
	Data any
	// Return is where the "Sign in" link brings the browser back to:
	// this page, when it is one a GET can show again, or "".
	Return string
}

// parseTemplates builds one template set per page: the layout plus the
// page's file.
func parseTemplates(assets Assets) (map[string]*template.Template, error) {
	funcs := template.FuncMap{"asset": assets.URL}
	layout, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return nil, fmt.Errorf("web: parse layout: %w", err)
	}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("web: list templates: %w", err)
	}
	pages := make(map[string]*template.Template)
	for _, name := range names {
		base := name[len("templates/"):]
		if base == "layout.html" {
			continue
		}
		t, err := template.Must(layout.Clone()).ParseFS(templateFS, name)
		if err != nil {
			return nil, fmt.Errorf("web: parse %s: %w", base, err)
		}
		pages[base] = t
	}
	return pages, nil
}

// render writes a page. It renders into a buffer first so a template error
// becomes a clean 500 instead of half a page.
func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, page, title string, data any) {
	t, ok := s.pages[page]
	if !ok {
		s.log.ErrorContext(r.Context(), "no such template", "page", page)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	v := view{Title: title, Data: data}
	if status == http.StatusOK {
		v.Return = returnPath(r)
	}
	if u, ok := s.currentUser(r); ok {
		v.User = &u
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout.html", v); err != nil {
		s.log.ErrorContext(r.Context(), "render page", "page", page, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}
