package fsapi_test

import (
	"bytes"
	"context"
	"encoding/xml"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"channels/internal/directory"
	"channels/internal/fixtures"
	"channels/internal/fsapi"
	"channels/internal/store"
	"channels/internal/store/storetest"
	"channels/internal/vertoconf"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// seed puts the recorded channels and clients into st, with their recorded
// ids.
func seed(t testing.TB, st *store.Store, users []fixtures.User) {
	t.Helper()
	ctx := context.Background()
	made := map[string]bool{}
	for _, u := range users {
		if made[u.Channel] {
			continue
		}
		if err := st.PutChannel(ctx, store.Channel{ID: u.Channel, Topic: "recorded", Created: time.Now()}); err != nil {
			t.Fatal(err)
		}
		made[u.Channel] = true
	}
	for _, u := range users {
		if err := st.PutClient(ctx, store.Client{ID: u.ID, Password: u.Password, ChannelID: u.Channel}); err != nil {
			t.Fatal(err)
		}
	}
}

// newEndpoint assembles /fsapi as the app does, for the recorded settings.
func newEndpoint(t testing.TB, st directory.Store, maxClients int) http.Handler {
	return newEndpointCache(t, st, maxClients, 0)
}

// newEndpointCache is newEndpoint with the directory cache's TTL (0:
// default, negative: none).
func newEndpointCache(t testing.TB, st directory.Store, maxClients int, ttl time.Duration) http.Handler {
	t.Helper()
	reg := fsapi.NewRegistry(nil)
	if err := vertoconf.Register(reg, vertoconf.Options{Bind: fixtures.Bind, Domain: fixtures.Domain}); err != nil {
		t.Fatal(err)
	}
	if err := directory.Register(reg, directory.Options{Store: st, Domain: fixtures.Domain, MaxClientsPerChannel: maxClients, CacheTTL: ttl}); err != nil {
		t.Fatal(err)
	}
	return fsapi.NewHandler(reg, fsapi.Options{
		User: fixtures.APIUser, Password: fixtures.APIPassword, Hostname: fixtures.Hostname,
		Networks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
	})
}

// replayRequest builds the HTTP request FreeSWITCH made. Reports (sent by
// mod_curl without credentials) carry the secret field as the pack's
// report.lua sends it.
func replayRequest(r fixtures.CurlRequest) *http.Request {
	form := r.Values()
	if !r.BasicAuth {
		form.Set(fsapi.SecretField, fixtures.APIPassword)
	}
	req := httptest.NewRequest(r.Method, r.Path, strings.NewReader(form.Encode()))
	req.RemoteAddr = "127.0.0.1:40000"
	req.Header.Set("Content-Type", r.ContentType)
	req.Header.Set("User-Agent", r.UserAgent)
	if r.BasicAuth {
		req.SetBasicAuth(r.BasicUser, fixtures.APIPassword)
	}
	return req
}

func goldenName(i int, r fixtures.CurlRequest) string {
	what := r.Form["action"]
	if what == "" {
		what = r.Form["key_value"]
	}
	if u := r.Form["user"]; u != "" {
		what += "-" + u[:8]
	} else if l := r.Form["login"]; l != "" {
		what += "-" + l[:8]
		if r.Form["success"] != "" {
			what += "-success" + r.Form["success"]
		}
	}
	return fmt.Sprintf("%02d-%s.xml", i, strings.NewReplacer("/", "_", "@", "_").Replace(what))
}

// TestReplayRecording sends every request FreeSWITCH made, in order,
// through the real endpoint and store, and compares each answer with its
// golden file and, where the stand-in answered what PROTOCOL.md specifies
// (every XML answer; its "ok" to reports was a placeholder), with the
// recorded answer byte for byte.
func TestReplayRecording(t *testing.T) {
	recs := fixtures.CurlRequests(t)
	users := fixtures.RecordedUsers(t)
	for _, b := range storetest.Stores(t) {
		t.Run(b.Name, func(t *testing.T) {
			seed(t, b.Store, users)
			h := newEndpoint(t, b.Store, 0)
			latest := map[string]string{} // client id: address of its latest login
			for i, r := range recs {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, replayRequest(r))
				res := w.Result()
				body, _ := io.ReadAll(res.Body)
				if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "text/xml" {
					t.Fatalf("request %d: status %d, Content-Type %q; body %s", i, res.StatusCode, res.Header.Get("Content-Type"), body)
				}
				got := string(body)
				if err := wellFormed(got); err != nil {
					t.Errorf("request %d: %v", i, err)
				}
				golden := filepath.Join("testdata", "golden", goldenName(i, r))
				if *update && b.Name == "sqlite" {
					if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				want, err := os.ReadFile(golden)
				if err != nil {
					t.Fatalf("%v (run with -update)", err)
				}
				if got != string(want) {
					t.Errorf("request %d: got\n%s\nwant (%s)\n%s", i, got, golden, want)
				}
				if strings.HasPrefix(r.Response, "<?xml") && got != r.Response {
					t.Errorf("request %d: differs from the recorded answer:\ngot\n%s\nrecorded\n%s", i, got, r.Response)
				}
				checkState(t, b.Store, i, r, latest)
			}
		})
	}
}

// checkState follows the connected state the reports set and clear: a
// disconnect clears it only when it closes the connection of the client's
// latest login (latest: client id to that connection's address).
func checkState(t *testing.T, st *store.Store, i int, r fixtures.CurlRequest, latest map[string]string) {
	t.Helper()
	login := strings.TrimSuffix(r.Form["login"], "@"+fixtures.Domain)
	if login == "" || strings.HasPrefix(login, "00000000") {
		return
	}
	c, err := st.ClientByID(context.Background(), login)
	if err != nil {
		t.Fatalf("request %d: %v", i, err)
	}
	switch {
	case r.Form["action"] == fsapi.ActionClientLogin && r.Form["success"] == "1":
		latest[login] = r.Form["address"]
		if c.Connected.IsZero() {
			t.Errorf("request %d: %s not connected after a login report", i, login)
		}
	case r.Form["action"] == fsapi.ActionClientDisconnect:
		if want := r.Form["address"] == latest[login]; c.Connected.IsZero() != want {
			t.Errorf("request %d: %s connected %v after the close of %s (latest login %s)", i, login, !c.Connected.IsZero(), r.Form["address"], latest[login])
		}
	}
}

func wellFormed(doc string) error {
	d := xml.NewDecoder(strings.NewReader(doc))
	for {
		_, err := d.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("not well-formed XML: %w\n%s", err, doc)
		}
	}
}

// TestReplayOtherHost replays the directory lookups with a different
// configured FreeSWITCH host name: nothing matches.
func TestReplayOtherHost(t *testing.T) {
	recs := fixtures.CurlRequests(t)
	reg := fsapi.NewRegistry(nil)
	if err := vertoconf.Register(reg, vertoconf.Options{Bind: fixtures.Bind, Domain: fixtures.Domain}); err != nil {
		t.Fatal(err)
	}
	h := fsapi.NewHandler(reg, fsapi.Options{User: fixtures.APIUser, Password: fixtures.APIPassword, Hostname: "other"})
	w := httptest.NewRecorder()
	h.ServeHTTP(w, replayRequest(recs[0]))
	if !bytes.Equal(w.Body.Bytes(), fsapi.NotFound()) {
		t.Errorf("verto.conf for another host: got\n%s", w.Body)
	}
}
