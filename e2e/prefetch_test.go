package e2e

import (
	"database/sql"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestCrossSitePrefetch: a page on another site that asks Chromium to
// prefetch channel pages (speculation rules, no click) makes no client
// and spends none of the visitor's budget of new clients: Chromium's
// prefetches reach Channels (counted on the way) and are refused, and
// the visitor's own first visit afterwards is served.
func TestCrossSitePrefetch(t *testing.T) {
	exe := chromiumPath(t)
	dbPath := filepath.Join(t.TempDir(), "channels.db")
	srv := startApp(t, "127.0.0.1:0", dbPath)
	db, err := sql.Open("sqlite", "file:"+dbPath+"?mode=ro") // the driver internal/store registers
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	var rooms []string
	for i := range 40 {
		ch, err := srv.store.CreateChannel(t.Context(), fmt.Sprintf("Room %d", i), true, 0)
		if err != nil {
			t.Fatal(err)
		}
		rooms = append(rooms, ch.ID)
	}
	// Channels behind a proxy that counts what Chromium sends it ahead of
	// any visit.
	target, _ := url.Parse("http://" + srv.addr)
	proxy := httputil.NewSingleHostReverseProxy(target)
	var mu sync.Mutex
	purposes := map[string]int{}
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := r.Header.Get("Sec-Purpose"); p != "" && strings.HasPrefix(r.URL.Path, "/c/") {
			mu.Lock()
			purposes[p]++
			mu.Unlock()
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	// The other site: localhost is another site than 127.0.0.1.
	base := strings.Replace(front.URL, "127.0.0.1", "localhost", 1)
	var urls []string
	for _, id := range rooms {
		urls = append(urls, `"`+base+`/c/`+id+`"`)
	}
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><title>Elsewhere</title><p>Nothing to click.</p>
<script type="speculationrules">{"prefetch": [{"source": "list", "urls": [%s]}]}</script>`, strings.Join(urls, ","))
	}))
	t.Cleanup(other.Close)

	clients := func() int {
		var n int
		if err := db.QueryRowContext(t.Context(), `SELECT count(*) FROM clients`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := clients()
	visitor := newBrowser(t, exe, "visitor")
	if err := visitor.navigate(other.URL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := 0
		for _, c := range purposes {
			n += c
		}
		mu.Unlock()
		if n >= 10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Chromium sent %d prefetches of channel pages (%v); the test proves nothing without them", n, purposes)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := clients() - before; n != 0 {
		t.Errorf("prefetches made %d clients", n)
	}
	// The visitor's own visit is served, with a client.
	if err := visitor.navigate(base + "/c/" + rooms[0]); err != nil {
		t.Fatal(err)
	}
	visitor.mustWait(connReady, 10*time.Second)
	if n := clients() - before; n != 1 {
		t.Errorf("the visit made %d clients, want 1", n)
	}
	mu.Lock()
	t.Logf("prefetches Chromium sent: %v", purposes)
	mu.Unlock()
}
