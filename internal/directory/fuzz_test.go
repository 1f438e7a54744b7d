package directory

import (
	"bytes"
	"context"
	"encoding/xml"
	"io"
	"net/url"
	"testing"

	"channels/internal/fixtures"
	"channels/internal/fsapi"
	"channels/internal/store/storetest"
)

// FuzzRequests sends arbitrary user, login and domain values through the
// directory and report handlers on a real store: answers are well-formed,
// and only the one seeded client is ever found.
func FuzzRequests(f *testing.F) {
	b := storetest.SQLite(f)
	fx := newFixture(f, b.Store, 0, 0)
	ctx := context.Background()
	ch, err := b.Store.CreateChannel(ctx, "fuzz", false, 0)
	if err != nil {
		f.Fatal(err)
	}
	c, err := b.Store.CreateClient(ctx, ch.ID)
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{c.ID, c.ID + "@" + fixtures.Domain, "", "x", "' OR 1=1 --", "00000000-0000-4000-8000-000000000000", "\xff<&>"} {
		f.Add(s, "1", fixtures.Domain)
	}
	f.Fuzz(func(t *testing.T, user, success, dom string) {
		lk := lookup(user)
		lk.Set("domain", dom)
		out := fx.respond(lk)
		wellFormed(t, out)
		found := !bytes.Equal(out, fsapi.NotFound())
		if found != (user == c.ID && dom == fixtures.Domain) {
			t.Fatalf("user %q domain %q: found %v: %s", user, dom, found, out)
		}
		for _, action := range []string{fsapi.ActionClientLogin, fsapi.ActionClientDisconnect} {
			wellFormed(t, fx.respond(url.Values{"action": {action}, "login": {user}, "success": {success}}))
			wellFormed(t, fx.respond(url.Values{"action": {action}, "login": {user}, "success": {success}, MembersField: {"1"}}))
		}
	})
}

func wellFormed(t *testing.T, doc []byte) {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(doc))
	for {
		if _, err := d.Token(); err == io.EOF {
			return
		} else if err != nil {
			t.Fatalf("%v: %q", err, doc)
		}
	}
}
