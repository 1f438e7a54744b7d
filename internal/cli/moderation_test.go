package cli

import (
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"

	"channels/internal/config"
	"channels/internal/password"
	"channels/internal/store/storetest"
)

// TestKickAndUnkick: with the embedded hub, a removal through the web
// app has the hub refuse the member's logins, and the unremove lets it
// log in again at once (the web app's Kick and Unkick reach the hub).
func TestKickAndUnkick(t *testing.T) {
	b := storetest.SQLite(t)
	hash, err := password.Hash("olga's password")
	if err != nil {
		t.Fatal(err)
	}
	u, err := b.Store.CreateUser(t.Context(), "olga", hash, false)
	if err != nil {
		t.Fatal(err)
	}
	ch, err := b.Store.CreateChannel(t.Context(), "Room", true, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.FSAPIPassword = "gateway secret"
	h, shutdown, err := Assemble(t.Context(), cfg, b.Store, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(t.Context())
	base := newTestServer(t, h)
	member := channelPageConfig(t, &http.Client{}, base+"/c/"+ch.ID)
	jar, _ := cookiejar.New(nil)
	owner := &http.Client{Jar: jar}
	post := func(path string, form url.Values) {
		t.Helper()
		resp, err := owner.PostForm(base+path, form)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK && !(path == "/signin" && resp.StatusCode < 400) {
			t.Fatalf("POST %s: %s", path, resp.Status)
		}
	}
	post("/signin", url.Values{"name": {"olga"}, "password": {"olga's password"}})
	wsURL := "ws" + strings.TrimPrefix(base, "http") + "/verto"
	login := func(sessid string) map[string]any {
		t.Helper()
		return dialVerto(t, wsURL).call(1, "login", map[string]any{"login": member.ClientID, "passwd": member.Password, "sessid": sessid})
	}

	if e := login("s1"); e != nil {
		t.Fatalf("login before the removal: %v", e)
	}
	post("/c/"+ch.ID+"/remove", url.Values{"client": {member.ClientID}})
	if e := login("s2"); e == nil {
		t.Fatal("login after the removal succeeded")
	}
	post("/c/"+ch.ID+"/unremove", url.Values{"client": {member.ClientID}})
	if e := login("s3"); e != nil {
		t.Fatalf("login after the unremove: %v", e)
	}
}
