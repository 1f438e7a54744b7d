package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"channels/internal/store"
	"channels/internal/store/storetest"

	"github.com/google/uuid"
)

func TestUsers(t *testing.T) {
	for _, b := range storetest.Stores(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			s := b.Store
			alice, err := s.CreateUser(ctx, "alice", "hash1", true)
			if err != nil {
				t.Fatal(err)
			}
			if alice.ID == 0 || !alice.Admin {
				t.Fatalf("created user = %+v", alice)
			}
			if _, err := s.CreateUser(ctx, "alice", "x", false); !errors.Is(err, store.ErrConflict) {
				t.Fatalf("duplicate user: err = %v, want ErrConflict", err)
			}
			if _, err := s.CreateUser(ctx, "bob", "hash2", false); err != nil {
				t.Fatal(err)
			}
			got, err := s.UserByName(ctx, "alice")
			if err != nil || got != alice {
				t.Fatalf("UserByName = %+v, %v; want %+v", got, err, alice)
			}
			if got, err := s.UserByID(ctx, alice.ID); err != nil || got != alice {
				t.Fatalf("UserByID = %+v, %v", got, err)
			}
			if _, err := s.UserByName(ctx, "nobody"); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("unknown user: err = %v", err)
			}
			if _, err := s.UserByID(ctx, 999999); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("unknown user id: err = %v", err)
			}
			if err := s.SetUserPassword(ctx, "alice", "hash3"); err != nil {
				t.Fatal(err)
			}
			if got, _ := s.UserByName(ctx, "alice"); got.PasswordHash != "hash3" {
				t.Fatalf("password hash = %q", got.PasswordHash)
			}
			if err := s.SetUserPassword(ctx, "nobody", "x"); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("set password of unknown user: %v", err)
			}
			users, err := s.ListUsers(ctx)
			if err != nil || len(users) != 2 || users[0].Name != "alice" || users[1].Name != "bob" || users[1].Admin {
				t.Fatalf("ListUsers = %+v, %v", users, err)
			}
		})
	}
}

func TestChannels(t *testing.T) {
	for _, b := range storetest.Stores(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			s := b.Store
			owner, err := s.CreateUser(ctx, "owner", "h", false)
			if err != nil {
				t.Fatal(err)
			}
			if n, err := s.CountChannels(ctx); err != nil || n != 0 {
				t.Fatalf("CountChannels = %d, %v", n, err)
			}
			first, err := s.CreateChannel(ctx, "First", true, owner.ID)
			if err != nil {
				t.Fatal(err)
			}
			if u, err := uuid.Parse(first.ID); err != nil || u.Version() != 4 {
				t.Fatalf("channel id %q is not a UUIDv4", first.ID)
			}
			time.Sleep(2 * time.Millisecond) // distinct created times
			private, err := s.CreateChannel(ctx, "Secret", false, owner.ID)
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(2 * time.Millisecond)
			second, err := s.CreateChannel(ctx, "Second", true, 0)
			if err != nil {
				t.Fatal(err)
			}
			pub, err := s.PublicChannels(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(pub) != 2 || pub[0].ID != second.ID || pub[1].ID != first.ID {
				t.Fatalf("PublicChannels = %+v; want Second, First", pub)
			}
			all, err := s.Channels(ctx)
			if err != nil || len(all) != 3 {
				t.Fatalf("Channels = %+v, %v", all, err)
			}
			owned, err := s.ChannelsOwnedBy(ctx, owner.ID)
			if err != nil || len(owned) != 2 || owned[0].ID != private.ID {
				t.Fatalf("ChannelsOwnedBy = %+v, %v", owned, err)
			}
			got, err := s.ChannelByID(ctx, private.ID)
			if err != nil || got != private {
				t.Fatalf("ChannelByID = %+v, %v; want %+v", got, err, private)
			}
			if got, _ := s.ChannelByID(ctx, second.ID); got.OwnerID != 0 {
				t.Fatalf("owner of unowned channel = %d", got.OwnerID)
			}
			private.Topic, private.Public = "Not so secret", true
			if err := s.UpdateChannel(ctx, private); err != nil {
				t.Fatal(err)
			}
			if got, _ := s.ChannelByID(ctx, private.ID); got != private {
				t.Fatalf("after update: %+v", got)
			}
			if err := s.UpdateChannel(ctx, store.Channel{ID: uuid.NewString(), Topic: "x"}); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("update unknown channel: %v", err)
			}
			if err := s.DeleteChannel(ctx, first.ID); err != nil {
				t.Fatal(err)
			}
			if _, err := s.ChannelByID(ctx, first.ID); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("deleted channel: %v", err)
			}
			if err := s.DeleteChannel(ctx, first.ID); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("delete twice: %v", err)
			}
			if n, _ := s.CountChannels(ctx); n != 2 {
				t.Fatalf("CountChannels = %d, want 2", n)
			}
		})
	}
}

func TestClients(t *testing.T) {
	for _, b := range storetest.Stores(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			s := b.Store
			ch, err := s.CreateChannel(ctx, "Room", true, 0)
			if err != nil {
				t.Fatal(err)
			}
			c1, err := s.CreateClient(ctx, ch.ID)
			if err != nil {
				t.Fatal(err)
			}
			c2, err := s.CreateClient(ctx, ch.ID)
			if err != nil {
				t.Fatal(err)
			}
			for _, id := range []string{c1.ID, c1.Password, c2.ID, c2.Password} {
				if u, err := uuid.Parse(id); err != nil || u.Version() != 4 {
					t.Fatalf("%q is not a UUIDv4", id)
				}
			}
			if c1.ID == c2.ID || c1.Password == c2.Password || c1.ID == c1.Password {
				t.Fatal("client ids or passwords repeat")
			}
			got, err := s.ClientByID(ctx, c1.ID)
			if err != nil || got != c1 || !got.Connected.IsZero() {
				t.Fatalf("ClientByID = %+v, %v; want %+v", got, err, c1)
			}
			if gch, gc, err := s.ClientInChannel(ctx, c1.ID, ch.ID); err != nil || gch != ch || gc != c1 {
				t.Fatalf("ClientInChannel = %+v, %+v, %v; want %+v, %+v", gch, gc, err, ch, c1)
			}
			other, err := s.CreateChannel(ctx, "Other", false, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := s.ClientInChannel(ctx, c1.ID, other.ID); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("ClientInChannel of another channel: %v", err)
			}
			if _, err := s.ClientByID(ctx, uuid.NewString()); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("unknown client: %v", err)
			}
			if _, err := s.CreateClient(ctx, uuid.NewString()); err == nil {
				t.Fatal("client of unknown channel created")
			}

			at := time.Date(2026, 11, 25, 10, 0, 0, 123456000, time.UTC)
			if err := s.SetClientConnected(ctx, c1.ID, at); err != nil {
				t.Fatal(err)
			}
			if got, _ := s.ClientByID(ctx, c1.ID); !got.Connected.Equal(at) {
				t.Fatalf("connected = %v, want %v", got.Connected, at)
			}
			if n, err := s.CountConnectedClients(ctx, ch.ID); err != nil || n != 1 {
				t.Fatalf("CountConnectedClients = %d, %v; want 1", n, err)
			}
			if err := s.ClearClientConnected(ctx, c1.ID); err != nil {
				t.Fatal(err)
			}
			if got, _ := s.ClientByID(ctx, c1.ID); !got.Connected.IsZero() {
				t.Fatalf("connected after clear = %v", got.Connected)
			}
			if n, _ := s.CountConnectedClients(ctx, ch.ID); n != 0 {
				t.Fatalf("CountConnectedClients = %d, want 0", n)
			}
			for name, err := range map[string]error{
				"set":   s.SetClientConnected(ctx, "nope", at),
				"clear": s.ClearClientConnected(ctx, "nope"),
			} {
				if !errors.Is(err, store.ErrNotFound) {
					t.Errorf("%s unknown client: %v", name, err)
				}
			}

			recorded := store.Channel{ID: uuid.NewString(), Topic: "Recorded", Public: false}
			if err := s.PutChannel(ctx, recorded); err != nil {
				t.Fatal(err)
			}
			if err := s.PutChannel(ctx, recorded); !errors.Is(err, store.ErrConflict) {
				t.Fatalf("PutChannel twice: %v", err)
			}
			if err := s.SetClientConnected(ctx, c1.ID, at); err != nil {
				t.Fatal(err)
			}
			if err := s.SetClientConnected(ctx, c2.ID, at); err != nil {
				t.Fatal(err)
			}
			if n, err := s.ClearAllConnected(ctx); err != nil || n != 2 {
				t.Fatalf("ClearAllConnected = %d, %v; want 2", n, err)
			}
			if n, _ := s.CountConnectedClients(ctx, ch.ID); n != 0 {
				t.Fatalf("CountConnectedClients after ClearAllConnected = %d", n)
			}
			fixed := store.Client{ID: uuid.NewString(), Password: "pw", ChannelID: ch.ID}
			if err := s.PutClient(ctx, fixed); err != nil {
				t.Fatal(err)
			}
			if err := s.PutClient(ctx, fixed); !errors.Is(err, store.ErrConflict) {
				t.Fatalf("PutClient twice: %v", err)
			}

			// Deleting a channel deletes its clients.
			if err := s.DeleteChannel(ctx, ch.ID); err != nil {
				t.Fatal(err)
			}
			if _, err := s.ClientByID(ctx, c2.ID); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("client of deleted channel: %v", err)
			}
		})
	}
}

func TestSessions(t *testing.T) {
	for _, b := range storetest.Stores(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			ss := b.Store.Sessions()
			if _, ok, err := ss.FindCtx(ctx, "missing"); ok || err != nil {
				t.Fatalf("find missing = %v, %v", ok, err)
			}
			future := time.Now().Add(time.Hour)
			if err := ss.CommitCtx(ctx, "tok", []byte("one"), future); err != nil {
				t.Fatal(err)
			}
			if err := ss.CommitCtx(ctx, "tok", []byte("two"), future); err != nil {
				t.Fatal(err)
			}
			data, ok, err := ss.FindCtx(ctx, "tok")
			if err != nil || !ok || string(data) != "two" {
				t.Fatalf("find = %q, %v, %v", data, ok, err)
			}
			if err := ss.CommitCtx(ctx, "old", []byte("x"), time.Now().Add(-time.Second)); err != nil {
				t.Fatal(err)
			}
			if _, ok, _ := ss.FindCtx(ctx, "old"); ok {
				t.Fatal("expired session found")
			}
			n, err := b.Store.DeleteExpiredSessions(ctx)
			if err != nil || n != 1 {
				t.Fatalf("DeleteExpiredSessions = %d, %v; want 1", n, err)
			}
			if err := ss.DeleteCtx(ctx, "tok"); err != nil {
				t.Fatal(err)
			}
			if _, ok, _ := ss.FindCtx(ctx, "tok"); ok {
				t.Fatal("deleted session found")
			}
		})
	}
}

// TestRestart checks that what one process writes, the next one reads, and
// that migrating an up-to-date database again changes nothing.
func TestRestart(t *testing.T) {
	// Each URL is made inside its subtest, so that a laptop without
	// PostgreSQL still runs the SQLite half (PostgresURL skips there).
	for _, u := range []struct {
		name string
		url  func(testing.TB) string
	}{
		{"sqlite", storetest.SQLiteURL},
		{"postgres", storetest.PostgresURL},
	} {
		t.Run(u.name, func(t *testing.T) {
			ctx := context.Background()
			url := u.url(t)
			s1, err := store.Open(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			ch, err := s1.CreateChannel(ctx, "Kept", true, 0)
			if err != nil {
				t.Fatal(err)
			}
			cl, err := s1.CreateClient(ctx, ch.ID)
			if err != nil {
				t.Fatal(err)
			}
			if err := s1.Sessions().CommitCtx(ctx, "t", []byte("d"), time.Now().Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
			s1.Close()

			s2, err := store.Open(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			defer s2.Close()
			if got, err := s2.ChannelByID(ctx, ch.ID); err != nil || got != ch {
				t.Fatalf("channel after restart = %+v, %v", got, err)
			}
			if got, err := s2.ClientByID(ctx, cl.ID); err != nil || got != cl {
				t.Fatalf("client after restart = %+v, %v", got, err)
			}
			if _, ok, err := s2.Sessions().FindCtx(ctx, "t"); !ok || err != nil {
				t.Fatalf("session after restart: %v, %v", ok, err)
			}
		})
	}
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	if _, err := store.Open(ctx, ""); err == nil {
		t.Error("empty database URL accepted")
	}
	if _, err := store.Open(ctx, "postgres://postgres@127.0.0.1:1/none?connect_timeout=2"); err == nil {
		t.Error("unreachable PostgreSQL accepted")
	}
}

func TestWarm(t *testing.T) {
	for _, b := range storetest.Stores(t) {
		t.Run(b.Name, func(t *testing.T) {
			before := b.Store.Stats().OpenConnections
			b.Store.Warm(context.Background(), 4)
			after := b.Store.Stats()
			switch b.Name {
			case "postgres":
				if after.Idle < 4 {
					t.Errorf("after Warm(4): %d idle connections", after.Idle)
				}
			default:
				if after.OpenConnections != before {
					t.Errorf("Warm opened SQLite connections: %d → %d", before, after.OpenConnections)
				}
			}
		})
	}
}

// TestClaim: of many concurrent claims of one name, exactly one wins, and
// the name stays claimed across a reopen.
func TestClaim(t *testing.T) {
	for _, b := range storetest.Stores(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			const n = 8
			wins := make(chan bool, n)
			for range n {
				go func() {
					ok, err := b.Store.Claim(ctx, "first-start")
					if err != nil {
						t.Error(err)
					}
					wins <- ok
				}()
			}
			won := 0
			for range n {
				if <-wins {
					won++
				}
			}
			if won != 1 {
				t.Fatalf("%d of %d concurrent claims won, want 1", won, n)
			}
			again, err := store.Open(ctx, b.URL)
			if err != nil {
				t.Fatal(err)
			}
			defer again.Close()
			if ok, err := again.Claim(ctx, "first-start"); ok || err != nil {
				t.Fatalf("claim after reopen = %v, %v; want false", ok, err)
			}
			if ok, err := again.Claim(ctx, "other"); !ok || err != nil {
				t.Fatalf("claim of another name = %v, %v; want true", ok, err)
			}
		})
	}
}
