package fsapi_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"channels/internal/fixtures"
	"channels/internal/store"
	"channels/internal/store/storetest"
)

// BenchmarkDirectoryLogin measures Verto directory logins through the
// whole /fsapi stack — TCP, HTTP keep-alive, basic auth, form parsing,
// matching, the store, rendering — at 16 and 64 concurrent clients, on
// SQLite and PostgreSQL. It reports req/s and the p50/p99 latency.
//
//	go test ./internal/fsapi -run '^$' -bench DirectoryLogin -benchtime 20000x
func BenchmarkDirectoryLogin(b *testing.B) {
	recs := fixtures.CurlRequests(b)
	users := fixtures.RecordedUsers(b)
	lookup := recs[5] // A's directory lookup, with every header FreeSWITCH sends
	if lookup.Form["action"] != "jsonrpc-authenticate" {
		b.Fatal("recording 5 is not a directory lookup")
	}
	eachEndpoint(b, users, func(name string, h http.Handler) {
		srv := httptest.NewServer(h)
		defer srv.Close()
		for _, conc := range []int{16, 64} {
			b.Run(fmt.Sprintf("%s/c%d", name, conc), func(b *testing.B) {
				benchLogins(b, srv.URL+"/fsapi", lookup, users, conc)
			})
		}
	})
}

// BenchmarkHandler measures the server side alone: ServeHTTP of a
// directory lookup, without TCP, on both stores, with and without the
// directory cache. ns/op is CPU per request spread over the cores.
func BenchmarkHandler(b *testing.B) {
	recs := fixtures.CurlRequests(b)
	users := fixtures.RecordedUsers(b)
	body := recs[5].Values().Encode()
	eachEndpoint(b, users, func(name string, h http.Handler) {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req := httptest.NewRequest(http.MethodPost, "/fsapi", strings.NewReader(body))
					req.RemoteAddr = "127.0.0.1:40000"
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
					req.SetBasicAuth(fixtures.APIUser, fixtures.APIPassword)
					w := httptest.NewRecorder()
					h.ServeHTTP(w, req)
					if w.Code != 200 || !strings.Contains(w.Body.String(), `name="password"`) {
						b.Errorf("status %d: %s", w.Code, w.Body)
						return
					}
				}
			})
		})
	})
}

// eachEndpoint calls f with /fsapi as the app assembles it, over SQLite
// and over PostgreSQL, each seeded with the recorded clients and 1000
// more, with the directory cache on and off; name is "store/cache".
func eachEndpoint(b *testing.B, users []fixtures.User, f func(name string, h http.Handler)) {
	for _, backend := range []func(testing.TB) storetest.Backend{storetest.SQLite, storetest.Postgres} {
		bk := backend(b)
		seedMany(b, bk.Store, users, 1000)
		for _, cache := range []struct {
			name string
			ttl  time.Duration
		}{{"cache", 0}, {"nocache", -1}} {
			f(bk.Name+"/"+cache.name, newEndpointCache(b, bk.Store, 0, cache.ttl))
		}
	}
}

// seedMany adds the recorded clients and n more, so lookups hit a table of
// realistic size.
func seedMany(b testing.TB, st *store.Store, users []fixtures.User, n int) {
	seed(b, st, users)
	ctx := context.Background()
	ch, err := st.CreateChannel(ctx, "bench", false, 0)
	if err != nil {
		b.Fatal(err)
	}
	for range n {
		if _, err := st.CreateClient(ctx, ch.ID); err != nil {
			b.Fatal(err)
		}
	}
}

func benchLogins(b *testing.B, target string, lookup fixtures.CurlRequest, users []fixtures.User, conc int) {
	client := &http.Client{Transport: &http.Transport{
		MaxIdleConns: conc * 2, MaxIdleConnsPerHost: conc * 2, MaxConnsPerHost: conc * 2,
	}}
	defer client.CloseIdleConnections()
	bodies := make([]string, len(users))
	for i, u := range users {
		form := url.Values{}
		for k, v := range lookup.Form {
			form.Set(k, v)
		}
		form.Set("user", u.ID)
		bodies[i] = form.Encode()
	}
	var mu sync.Mutex
	var all []time.Duration
	b.SetParallelism((conc + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		lat := make([]time.Duration, 0, 1024)
		i := 0
		for pb.Next() {
			i++
			req, _ := http.NewRequest(http.MethodPost, target, strings.NewReader(bodies[i%len(bodies)]))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth(fixtures.APIUser, fixtures.APIPassword)
			t0 := time.Now()
			res, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			lat = append(lat, time.Since(t0))
			if res.StatusCode != 200 || !strings.Contains(string(body), `name="password"`) {
				b.Errorf("status %d: %s", res.StatusCode, body)
				return
			}
		}
		mu.Lock()
		all = append(all, lat...)
		mu.Unlock()
	})
	elapsed := time.Since(start)
	b.StopTimer()
	if len(all) == 0 {
		return
	}
	slices.Sort(all)
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "req/s")
	b.ReportMetric(float64(all[len(all)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-µs")
}
