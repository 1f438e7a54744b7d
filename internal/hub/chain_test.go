package hub

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"channels/internal/directory"
	"channels/internal/fixtures"
	"channels/internal/fsapi"
	"channels/internal/store"
	"channels/internal/store/storetest"
)

// directoryGateway is the production gateway over st: an fsapi registry
// with the directory handlers (login lookup, login and disconnect reports).
func directoryGateway(t testing.TB, st *store.Store) Gateway {
	t.Helper()
	reg := fsapi.NewRegistry(slog.New(slog.DiscardHandler))
	reg.SetBatcher(st.Batch) // as internal/cli does
	if err := directory.Register(reg, directory.Options{Store: st, Domain: fixtures.Domain}); err != nil {
		t.Fatal(err)
	}
	return reg
}

// TestStoreChain: through the real directory handlers on both databases,
// a login marks the client connected, a disconnect clears it, a wrong
// password does not.
func TestStoreChain(t *testing.T) {
	for _, b := range storetest.Stores(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			ch, cl := storetest.ChannelWithClient(t, b.Store)
			th := startHub(t, directoryGateway(t, b.Store), nil)

			bad := dial(t, th, "bad", nil)
			if e := errorOf(t, bad.call(1, "login", map[string]any{"login": cl.ID, "passwd": "nope"})); e["message"] != "Authentication Failure" {
				t.Fatal(e)
			}
			if n, _ := b.Store.CountConnectedClients(ctx, ch.ID); n != 0 {
				t.Fatalf("connected after a failed login: %d", n)
			}

			c := dial(t, th, "c", nil)
			c.login(cl.ID, cl.Password, "s1")
			// Reports are posted off the connection's loop, as the Lua hooks do.
			waitFor(t, "connected after login", func() bool {
				n, _ := b.Store.CountConnectedClients(ctx, ch.ID)
				return n == 1
			})
			res := result(t, c.call(2, "verto.subscribe", map[string]any{"eventChannel": ch.ID}))
			if fmt.Sprint(res["subscribedChannels"]) != "["+ch.ID+"]" {
				t.Fatal(res)
			}
			_ = c.ws.CloseNow()
			waitFor(t, "disconnected", func() bool {
				got, err := b.Store.ClientByID(ctx, cl.ID)
				return err == nil && got.Connected.IsZero()
			})
		})
	}
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	waitWithin(t, what, 5*time.Second, cond)
}

// waitWithin polls cond until it holds, failing the test after d.
func waitWithin(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting: %s", d, what)
		}
		time.Sleep(time.Millisecond)
	}
}
