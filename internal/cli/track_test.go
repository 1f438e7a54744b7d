package cli

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// TestRequestsUnderWay: the tracker names the requests under way, oldest
// first, and forgets each when it ends, its pooled entry reused by later
// requests without mixing them up; WebSocket upgrades are not counted.
func TestRequestsUnderWay(t *testing.T) {
	var rs requests
	const n = 40
	entered := make(chan string, n)
	release := make(map[string]chan struct{})
	for i := range n {
		release[fmt.Sprintf("/r%d", i)] = make(chan struct{})
	}
	release["/verto"] = make(chan struct{})
	h := rs.track(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ch, ok := release[r.URL.Path]; ok {
			entered <- r.URL.Path
			<-ch
		}
	}))
	serve := func(path string, hdr ...string) {
		r := httptest.NewRequest(http.MethodPost, path, nil)
		r.RemoteAddr = "192.0.2.7:1234"
		if len(hdr) == 2 {
			r.Header.Set(hdr[0], hdr[1])
		}
		h.ServeHTTP(httptest.NewRecorder(), r)
	}
	var even, odd sync.WaitGroup
	for i := range n {
		p := fmt.Sprintf("/r%d", i)
		wg := &odd
		if i%2 == 0 {
			wg = &even
		}
		wg.Go(func() { serve(p) })
		<-entered // in order, so that the oldest are known
	}
	// A WebSocket upgrade, blocked too, is not counted.
	var ws sync.WaitGroup
	ws.Go(func() { serve("/verto", "Upgrade", "websocket") })
	<-entered
	if got, oldest := rs.underWay(3); got != n || len(oldest) != 3 ||
		!strings.HasPrefix(oldest[0], "POST /r0 from 192.0.2.7:1234 for ") || !strings.HasPrefix(oldest[2], "POST /r2 ") {
		t.Fatalf("under way %d, oldest %q", got, oldest)
	}
	// The even ones end; others come and go (reusing pooled entries).
	for i := 0; i < n; i += 2 {
		close(release[fmt.Sprintf("/r%d", i)])
	}
	even.Wait()
	for range 100 {
		serve("/quick")
	}
	if got, oldest := rs.underWay(2); got != n/2 || len(oldest) != 2 ||
		!strings.HasPrefix(oldest[0], "POST /r1 ") || !strings.HasPrefix(oldest[1], "POST /r3 ") {
		t.Fatalf("under way %d, oldest %q", got, oldest)
	}
	for i := 1; i < n; i += 2 {
		close(release[fmt.Sprintf("/r%d", i)])
	}
	odd.Wait()
	if got, oldest := rs.underWay(10); got != 0 || len(oldest) != 0 {
		t.Fatalf("under way %d, oldest %q", got, oldest)
	}
	close(release["/verto"])
	ws.Wait()
}
