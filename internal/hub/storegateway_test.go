package hub

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"channels/internal/store"
	"channels/internal/store/storetest"
)

// storeGateway answers directory lookups and takes reports from a real
// store, the way the Channels /fsapi directory handlers do (CONTRACTS.md).
// It stands in for internal/directory until that package exists, so the
// hub is exercised against real SQLite and PostgreSQL data.
type storeGateway struct {
	st     *store.Store
	domain string
}

func (g *storeGateway) Respond(ctx context.Context, form url.Values) []byte {
	switch {
	case form.Get("section") == "directory" && form.Get("action") == "jsonrpc-authenticate":
		c, err := g.st.ClientByID(ctx, form.Get("user"))
		if err != nil || form.Get("domain") != g.domain {
			return []byte(notFoundDoc)
		}
		return []byte(fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<document type="freeswitch/xml">
  <section name="directory">
    <domain name="%s">
      <user id="%s">
        <params>
          <param name="password" value="%s"/>
          <param name="jsonrpc-allowed-methods" value="%s"/>
          <param name="jsonrpc-allowed-event-channels" value="%s"/>
        </params>
      </user>
    </domain>
  </section>
</document>
`, xmlAttr(g.domain), xmlAttr(c.ID), xmlAttr(c.Password), browserMethods, xmlAttr(c.ChannelID)))
	case form.Get("action") == "verto_client_login" && form.Get("success") == "1":
		_ = g.st.SetClientConnected(ctx, form.Get("login"), time.Now())
	case form.Get("action") == "verto_client_disconnect":
		id, _, _ := strings.Cut(form.Get("login"), "@")
		_ = g.st.ClearClientConnected(ctx, id)
	}
	return []byte(notFoundDoc)
}

// TestStoreChain: on both databases, a login through the hub marks the
// client connected, a disconnect clears it, a wrong password does not.
func TestStoreChain(t *testing.T) {
	for _, b := range storetest.Stores(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			ch, err := b.Store.CreateChannel(ctx, "topic", true, 0)
			if err != nil {
				t.Fatal(err)
			}
			cl, err := b.Store.CreateClient(ctx, ch.ID)
			if err != nil {
				t.Fatal(err)
			}
			th := startHub(t, &storeGateway{st: b.Store, domain: recDomain}, nil)

			bad := dial(t, th, "bad", nil)
			if e := errorOf(t, bad.call(1, "login", map[string]any{"login": cl.ID, "passwd": "nope"})); e["message"] != "Authentication Failure" {
				t.Fatal(e)
			}
			if n, _ := b.Store.CountConnectedClients(ctx, ch.ID); n != 0 {
				t.Fatalf("connected after a failed login: %d", n)
			}

			c := dial(t, th, "c", nil)
			c.login(cl.ID, cl.Password, "s1")
			if n, _ := b.Store.CountConnectedClients(ctx, ch.ID); n != 1 {
				t.Fatalf("connected clients after login: %d", n)
			}
			res := result(t, c.call(2, "verto.subscribe", map[string]any{"eventChannel": ch.ID}))
			if fmt.Sprint(res["subscribedChannels"]) != "["+ch.ID+"]" {
				t.Fatal(res)
			}
			_ = c.ws.CloseNow()
			deadline := time.Now().Add(5 * time.Second)
			for {
				got, err := b.Store.ClientByID(ctx, cl.ID)
				if err != nil && !errors.Is(err, store.ErrNotFound) {
					t.Fatal(err)
				}
				if got.Connected.IsZero() {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("still connected after the disconnect")
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}
