package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"channels/internal/store"
	"channels/internal/store/storetest"
)

// clock is a store clock that moves only when told.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// unknownID is the ID of no channel and no client.
const unknownID = "00000000-0000-4000-8000-000000000000"

// modFixture is a channel with clients on a store whose clock is frozen.
type modFixture struct {
	t     *testing.T
	s     *store.Store
	url   string // the store's database, for process
	clk   *clock
	ch    store.Channel
	other store.Channel
}

// eachModStore runs test on a fresh fixture of each store storetest
// offers, as a subtest named after it.
func eachModStore(t *testing.T, test func(t *testing.T, f *modFixture)) {
	for _, b := range storetest.Stores(t) {
		t.Run(b.Name, func(t *testing.T) { test(t, newModFixture(t, b)) })
	}
}

func newModFixture(t *testing.T, b storetest.Backend) *modFixture {
	t.Helper()
	s := b.Store
	clk := &clock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	s.SetClock(clk.Now)
	f := &modFixture{t: t, s: s, url: b.URL, clk: clk}
	var err error
	if f.ch, err = s.CreateChannel(t.Context(), "Room", true, 0); err != nil {
		t.Fatal(err)
	}
	if f.other, err = s.CreateChannel(t.Context(), "Other", true, 0); err != nil {
		t.Fatal(err)
	}
	return f
}

// process opens the fixture's database as another process would, on the
// fixture's clock; it is closed when the test ends.
func (f *modFixture) process() *store.Store {
	f.t.Helper()
	s, err := store.Open(f.t.Context(), f.url)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { s.Close() })
	s.SetClock(f.clk.Now)
	return s
}

func (f *modFixture) client(ch store.Channel, origin string) store.Client {
	f.t.Helper()
	c, err := f.s.CreateClientFrom(f.t.Context(), ch.ID, origin)
	if err != nil {
		f.t.Fatal(err)
	}
	return c
}

// clients puts n clients of the fixture's channel, IDs c00000 on, and
// returns their IDs.
func (f *modFixture) clients(n int) []string {
	f.t.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("c%05d", i)
		if err := f.s.PutClient(f.t.Context(), store.Client{ID: ids[i], Password: "pw", ChannelID: f.ch.ID}); err != nil {
			f.t.Fatal(err)
		}
	}
	return ids
}

// remove removes client from the fixture's channel until then, by no
// manager in particular.
func (f *modFixture) remove(client string, until time.Time) {
	f.t.Helper()
	if _, err := f.s.Remove(f.t.Context(), f.ch.ID, client, 0, until); err != nil {
		f.t.Fatal(err)
	}
}

// lock locks the fixture's channel now, for no manager in particular.
func (f *modFixture) lock() {
	f.t.Helper()
	if _, err := f.s.Lock(f.t.Context(), f.ch.ID, f.clk.Now(), ""); err != nil {
		f.t.Fatal(err)
	}
}

// mod reads the moderation state afresh: past the cache of what this
// process read.
func (f *modFixture) mod() store.Moderation {
	f.t.Helper()
	f.clk.advance(store.ModerationAge)
	m, err := f.s.Moderation(f.t.Context(), f.ch.ID)
	if err != nil {
		f.t.Fatal(err)
	}
	return m
}

// TestRemove: a removal keeps its client out until it ends and carries
// the origin the client was created from; it is refused for clients of
// other channels and unknown ones, and the channel's deletion takes it.
func TestRemove(t *testing.T) {
	eachModStore(t, func(t *testing.T, f *modFixture) {
		ctx := t.Context()
		s := f.s
		u, err := s.CreateUser(ctx, "olga", "hash", false)
		if err != nil {
			t.Fatal(err)
		}
		mallory := f.client(f.ch, "203.0.113.7")
		alice := f.client(f.ch, "2001:db8:1:2::/64")
		stranger := f.client(f.other, "203.0.113.7")
		if got, err := s.ClientByID(ctx, alice.ID); err != nil || got.Origin != "2001:db8:1:2::/64" {
			t.Fatalf("ClientByID = %+v, %v: origin not kept", got, err)
		}

		if m := f.mod(); m.Removed != nil || m.Refusal(mallory) != "" {
			t.Fatalf("before any removal: %+v", m)
		}
		until := f.clk.Now().Add(time.Hour)
		r, err := s.Remove(ctx, f.ch.ID, mallory.ID, u.ID, until)
		if err != nil {
			t.Fatal(err)
		}
		if r.Origin != "203.0.113.7" || !r.Until.Equal(until) || r.By != u.ID {
			t.Errorf("removal %+v", r)
		}
		// Seen at once by this process, without waiting for the cache.
		m, err := s.Moderation(ctx, f.ch.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got := m.Refusal(mallory); got != store.RefusedRemoved {
			t.Errorf("removed client: refusal %q", got)
		}
		if got := m.Refusal(alice); got != "" {
			t.Errorf("other client: refusal %q", got)
		}
		if got, ok := m.RemovalFrom("203.0.113.7"); !ok || got.ClientID != mallory.ID {
			t.Errorf("RemovalFrom(origin) = %+v, %v", got, ok)
		}
		for _, origin := range []string{"", "203.0.113.8", "2001:db8:1:2::/64"} {
			if _, ok := m.RemovalFrom(origin); ok {
				t.Errorf("RemovalFrom(%q) found a removal", origin)
			}
		}
		if ids := m.RemovedIDs(); !slices.Equal(ids, []string{mallory.ID}) {
			t.Errorf("RemovedIDs = %v", ids)
		}
		ch, err := s.ChannelByID(ctx, f.ch.ID)
		if err != nil || !ch.RemovalsUntil.Equal(until) {
			t.Errorf("RemovalsUntil = %v, %v; want %v", ch.RemovalsUntil, err, until)
		}

		for _, tt := range []struct {
			name            string
			channel, client string
		}{
			{"client of another channel", f.ch.ID, stranger.ID},
			{"unknown client", f.ch.ID, unknownID},
			{"unknown channel", unknownID, mallory.ID},
		} {
			if _, err := s.Remove(ctx, tt.channel, tt.client, u.ID, until); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("%s: err = %v, want ErrNotFound", tt.name, err)
			}
		}

		// Removing again replaces the removal: a shorter one counts.
		if _, err := s.Remove(ctx, f.ch.ID, mallory.ID, u.ID, f.clk.Now().Add(15*time.Minute)); err != nil {
			t.Fatal(err)
		}
		f.clk.advance(15 * time.Minute)
		if m := f.mod(); m.Refusal(mallory) != "" {
			t.Errorf("after its end: still removed %+v", m.Removed)
		}

		f.remove(alice.ID, f.clk.Now().Add(time.Hour))
		if err := s.Unremove(ctx, f.ch.ID, alice.ID); err != nil {
			t.Fatal(err)
		}
		if m, _ := s.Moderation(ctx, f.ch.ID); m.Refusal(alice) != "" {
			t.Errorf("unremoved client still removed")
		}
		if err := s.Unremove(ctx, f.ch.ID, alice.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("unremove twice: err = %v, want ErrNotFound", err)
		}

		f.remove(alice.ID, f.clk.Now().Add(time.Hour))
		if err := s.DeleteChannel(ctx, f.ch.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Moderation(ctx, f.ch.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("deleted channel: err = %v, want ErrNotFound", err)
		}
		res, err := s.Sweep(ctx, store.SweepRules{Now: f.clk.Now().Add(48 * time.Hour)})
		if err != nil || res.Removals != 0 {
			t.Errorf("sweep after the channel's deletion: %+v, %v: its removals should have gone with it", res, err)
		}
	})
}

// TestRemovalCap: a channel holds at most MaxActiveRemovals active
// removals; replacing one is not a new one, and an ended one frees its
// place.
func TestRemovalCap(t *testing.T) {
	eachModStore(t, func(t *testing.T, f *modFixture) {
		ctx := t.Context()
		s := f.s
		ids := f.clients(store.MaxActiveRemovals + 1)
		now := f.clk.Now()
		// The first ends early, to free its place.
		f.remove(ids[0], now.Add(time.Minute))
		for _, id := range ids[1:store.MaxActiveRemovals] {
			f.remove(id, now.Add(time.Hour))
		}
		last := ids[store.MaxActiveRemovals]
		if _, err := s.Remove(ctx, f.ch.ID, last, 0, now.Add(time.Hour)); !errors.Is(err, store.ErrTooManyRemovals) {
			t.Fatalf("removal %d: err = %v, want ErrTooManyRemovals", store.MaxActiveRemovals+1, err)
		}
		if _, err := s.Remove(ctx, f.ch.ID, ids[5], 0, now.Add(2*time.Hour)); err != nil {
			t.Errorf("replacing a removal at the cap: %v", err)
		}
		if got := len(f.mod().Removed); got != store.MaxActiveRemovals {
			t.Errorf("%d active removals, want %d", got, store.MaxActiveRemovals)
		}
		f.clk.advance(time.Minute)
		if _, err := s.Remove(ctx, f.ch.ID, last, 0, now.Add(time.Hour)); err != nil {
			t.Errorf("after one ended: %v", err)
		}
	})
}

// TestRemovalSweep: the sweeper deletes the removals that ended and keeps
// the others.
func TestRemovalSweep(t *testing.T) {
	eachModStore(t, func(t *testing.T, f *modFixture) {
		ctx := t.Context()
		s := f.s
		short, long := f.client(f.ch, "192.0.2.1"), f.client(f.ch, "192.0.2.2")
		now := f.clk.Now()
		f.remove(short.ID, now.Add(15*time.Minute))
		f.remove(long.ID, now.Add(time.Hour))
		for _, step := range []struct {
			after time.Duration
			swept int64
		}{
			{14 * time.Minute, 0},
			{15 * time.Minute, 1},
			{30 * time.Minute, 0},
			{time.Hour, 1},
		} {
			r, err := s.Sweep(ctx, store.SweepRules{Now: now.Add(step.after)})
			if err != nil || r.Removals != step.swept {
				t.Errorf("sweep at +%v: %d removals, %v; want %d", step.after, r.Removals, err, step.swept)
			}
		}
		// Swept, so unremoving finds nothing.
		if err := s.Unremove(ctx, f.ch.ID, long.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("unremove after the sweep: err = %v", err)
		}
	})
}

// TestLockAdmission: a lock admits the clients present at it (connected,
// or logged in within LockPresence before) and the locking manager's, for
// as long as it lasts: a present client that disconnects and comes back
// is still in. An unlock and a later lock start afresh.
func TestLockAdmission(t *testing.T) {
	eachModStore(t, func(t *testing.T, f *modFixture) {
		ctx := t.Context()
		s := f.s
		now := f.clk.Now()
		connected, recent, earlier, never, manager, late := f.client(f.ch, ""), f.client(f.ch, ""), f.client(f.ch, ""),
			f.client(f.ch, ""), f.client(f.ch, ""), f.client(f.ch, "")
		elsewhere := f.client(f.other, "")
		login := func(c store.Client, at time.Time) {
			t.Helper()
			if err := s.ClientLoggedIn(ctx, c.ID, "192.0.2.1:5000", at); err != nil {
				t.Fatal(err)
			}
		}
		login(connected, now.Add(-time.Hour))
		login(recent, now.Add(-store.LockPresence))
		if err := s.ClearClientConnected(ctx, recent.ID); err != nil {
			t.Fatal(err)
		}
		login(earlier, now.Add(-store.LockPresence-time.Second))
		if err := s.ClearClientConnected(ctx, earlier.ID); err != nil {
			t.Fatal(err)
		}
		login(elsewhere, now)

		locked, err := s.Lock(ctx, f.ch.ID, now, manager.ID)
		if err != nil || !locked.Equal(now) {
			t.Fatalf("Lock = %v, %v", locked, err)
		}
		refusals := func(when string, want map[store.Client]string) {
			t.Helper()
			m := f.mod()
			for c, w := range want {
				got, err := s.ClientByID(ctx, c.ID)
				if err != nil {
					t.Fatal(err)
				}
				if r := m.Refusal(got); r != w {
					t.Errorf("%s: client %s refused %q, want %q", when, c.ID, r, w)
				}
			}
		}
		refusals("locked", map[store.Client]string{
			connected: "", recent: "", manager: "",
			earlier: store.RefusedLocked, never: store.RefusedLocked, late: store.RefusedLocked,
		})
		if m, err := s.Moderation(ctx, f.other.ID); err != nil || !m.Locked.IsZero() {
			t.Errorf("the other channel: %+v, %v", m, err)
		}

		// A present client reloads: it disconnects and logs in again.
		f.clk.advance(time.Hour)
		if err := s.ClearClientConnected(ctx, connected.ID); err != nil {
			t.Fatal(err)
		}
		login(connected, f.clk.Now())
		// Locking again keeps the lock's time and admissions, and
		// admits the manager asking.
		again, err := s.Lock(ctx, f.ch.ID, f.clk.Now(), late.ID)
		if err != nil || !again.Equal(now) {
			t.Fatalf("second Lock = %v, %v; want the first lock's time %v", again, err, now)
		}
		refusals("after a reload and a second lock", map[store.Client]string{
			connected: "", recent: "", manager: "", late: "",
			earlier: store.RefusedLocked, never: store.RefusedLocked,
		})
		if err := s.Admit(ctx, f.ch.ID, never.ID, now); err != nil {
			t.Fatal(err)
		}
		if err := s.Admit(ctx, f.ch.ID, elsewhere.ID, now); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("admit a client of another channel: err = %v", err)
		}
		refusals("after Admit", map[store.Client]string{never: "", earlier: store.RefusedLocked})

		if err := s.Unlock(ctx, f.ch.ID); err != nil {
			t.Fatal(err)
		}
		refusals("unlocked", map[store.Client]string{connected: "", earlier: "", never: ""})
		if err := s.Admit(ctx, f.ch.ID, earlier.ID, now); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("admit to an ended lock: err = %v", err)
		}

		// A new lock: only who is present now. recent's login is long
		// past; connected is still connected.
		f.clk.advance(time.Hour)
		f.lock()
		refusals("locked again", map[store.Client]string{
			connected: "", recent: store.RefusedLocked, manager: store.RefusedLocked, never: store.RefusedLocked,
		})
		if _, err := s.Lock(ctx, unknownID, now, ""); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("lock an unknown channel: err = %v", err)
		}
		if err := s.Unlock(ctx, unknownID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("unlock an unknown channel: err = %v", err)
		}
	})
}

// TestModerationFreshness: another process's changes show within
// ModerationAge; a channel never moderated costs at most one query per
// ModerationAge, and none when it was just read with its client.
func TestModerationFreshness(t *testing.T) {
	eachModStore(t, func(t *testing.T, f *modFixture) {
		ctx := t.Context()
		c := f.client(f.ch, "192.0.2.1")
		other := f.process()

		q := other.Queries()
		for range 3 {
			if m, err := other.Moderation(ctx, f.ch.ID); err != nil || m.Refusal(c) != "" {
				t.Fatalf("Moderation = %+v, %v", m, err)
			}
		}
		if n := other.Queries() - q; n != 1 {
			t.Errorf("3 reads within ModerationAge: %d queries, want 1", n)
		}
		f.remove(c.ID, f.clk.Now().Add(time.Hour))
		f.lock()
		f.clk.advance(store.ModerationAge - time.Millisecond)
		if m, _ := other.Moderation(ctx, f.ch.ID); m.Refusal(c) != "" || !m.Locked.IsZero() {
			t.Errorf("within ModerationAge: the other process's read changed: %+v", m)
		}
		// Told of the removal (the hub hears it over NATS), the other
		// process reads afresh at once.
		if err := other.ForgetClient(ctx, c.ID); err != nil {
			t.Fatal(err)
		}
		if m, _ := other.Moderation(ctx, f.ch.ID); m.Refusal(c) != store.RefusedRemoved {
			t.Errorf("after ForgetClient: %+v; want removed", m)
		}
		if err := other.ForgetClient(ctx, unknownID); err != nil {
			t.Errorf("ForgetClient of an unknown client: %v", err)
		}
		f.clk.advance(time.Millisecond)
		m, err := other.Moderation(ctx, f.ch.ID)
		if err != nil || m.Refusal(c) != store.RefusedRemoved || m.Locked.IsZero() {
			t.Errorf("after ModerationAge: %+v, %v; want removed and locked", m, err)
		}

		// A channel just read with its client costs nothing more.
		quiet, err := f.s.CreateChannel(ctx, "Quiet", true, 0)
		if err != nil {
			t.Fatal(err)
		}
		qc := f.client(quiet, "")
		ch, _, err := f.s.ClientInChannel(ctx, qc.ID, quiet.ID)
		if err != nil {
			t.Fatal(err)
		}
		q = f.s.Queries()
		if _, err := f.s.ModerationOf(ctx, ch); err != nil {
			t.Fatal(err)
		}
		if _, err := f.s.Moderation(ctx, quiet.ID); err != nil {
			t.Fatal(err)
		}
		if n := f.s.Queries() - q; n != 0 {
			t.Errorf("unmoderated channel just read: %d queries, want 0", n)
		}
	})
}

// TestRemoveConcurrent: removals racing at the cap cannot pass it
// together.
func TestRemoveConcurrent(t *testing.T) {
	eachModStore(t, func(t *testing.T, f *modFixture) {
		ctx := context.Background()
		s := f.s
		now := f.clk.Now()
		ids := f.clients(store.MaxActiveRemovals + 8)
		for _, id := range ids[:store.MaxActiveRemovals-2] {
			f.remove(id, now.Add(time.Hour))
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		ok := 0
		for _, id := range ids[store.MaxActiveRemovals-2:] {
			wg.Go(func() {
				_, err := s.Remove(ctx, f.ch.ID, id, 0, now.Add(time.Hour))
				if err != nil && !errors.Is(err, store.ErrTooManyRemovals) {
					t.Error(err)
				}
				if err == nil {
					mu.Lock()
					ok++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if ok != 2 {
			t.Errorf("%d of 10 racing removals passed with 2 places left", ok)
		}
	})
}

// TestFreshModeration: FreshModeration answers another process's change
// at once, where Moderation may answer what it read for ModerationAge,
// and what it read is Moderation's answer from then on.
func TestFreshModeration(t *testing.T) {
	eachModStore(t, func(t *testing.T, f *modFixture) {
		ctx := t.Context()
		c := f.client(f.ch, "192.0.2.1")
		other := f.process()

		if m, err := other.Moderation(ctx, f.ch.ID); err != nil || m.Refusal(c) != "" {
			t.Fatalf("Moderation = %+v, %v", m, err)
		}
		f.remove(c.ID, f.clk.Now().Add(time.Hour))
		f.lock()
		if m, _ := other.Moderation(ctx, f.ch.ID); m.Refusal(c) != "" {
			t.Fatalf("the cache did not answer (the test proves nothing): %+v", m)
		}
		q := other.Queries()
		m, err := other.FreshModeration(ctx, f.ch.ID)
		if err != nil || m.Refusal(c) != store.RefusedRemoved || m.Locked.IsZero() || !slices.Equal(m.RemovedIDs(), []string{c.ID}) {
			t.Fatalf("FreshModeration = %+v, %v; want removed and locked", m, err)
		}
		if n := other.Queries() - q; n != 2 {
			t.Errorf("a fresh read with removals: %d queries, want 2", n)
		}
		if m, _ := other.Moderation(ctx, f.ch.ID); m.Refusal(c) != store.RefusedRemoved {
			t.Errorf("Moderation after the fresh read: %+v; want removed", m)
		}
		if _, err := other.FreshModeration(ctx, unknownID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("unknown channel: err = %v", err)
		}
	})
}

// TestModerationReadRacesChange: a read of the moderation state (or of a
// channel with its client) whose query ran before a change this process
// made, and which is kept after it, is not kept: the next read shows
// the change at once, not ModerationAge later.
func TestModerationReadRacesChange(t *testing.T) {
	eachModStore(t, func(t *testing.T, f *modFixture) {
		ctx := t.Context()
		c := f.client(f.ch, "192.0.2.1")
		// race makes the next read of f.ch run change between its
		// query and its keeping.
		var race func()
		f.s.SetReadHook(func(id string) {
			if id == f.ch.ID && race != nil {
				change := race
				race = nil
				change()
			}
		})
		t.Cleanup(func() { f.s.SetReadHook(nil) })
		lock := func() {
			if _, err := f.s.Lock(ctx, f.ch.ID, f.clk.Now(), ""); err != nil {
				t.Error(err)
			}
		}

		race = lock
		if m, err := f.s.Moderation(ctx, f.ch.ID); err != nil || !m.Locked.IsZero() {
			t.Fatalf("the racing read = %+v, %v; want the state before the lock", m, err)
		}
		if race != nil {
			t.Fatal("the lock did not race the read")
		}
		if m, _ := f.s.Moderation(ctx, f.ch.ID); m.Locked.IsZero() {
			t.Error("Moderation after a racing lock: not locked")
		}

		race = func() {
			if _, err := f.s.Remove(ctx, f.ch.ID, c.ID, 0, f.clk.Now().Add(time.Hour)); err != nil {
				t.Error(err)
			}
		}
		if m, err := f.s.FreshModeration(ctx, f.ch.ID); err != nil || m.Refusal(c) == store.RefusedRemoved {
			t.Fatalf("the racing read = %+v, %v; want the state before the removal", m, err)
		}
		if m, _ := f.s.Moderation(ctx, f.ch.ID); m.Refusal(c) != store.RefusedRemoved {
			t.Errorf("Moderation after a racing removal: %+v; want removed", m)
		}

		// The channel a page view reads with its client: kept for
		// RecentChannelAge, and asked by Moderation first.
		if err := f.s.Unlock(ctx, f.ch.ID); err != nil {
			t.Fatal(err)
		}
		if err := f.s.Unremove(ctx, f.ch.ID, c.ID); err != nil {
			t.Fatal(err)
		}
		f.clk.advance(time.Hour) // past the removal's end: the channel alone answers
		race = lock
		if ch, _, err := f.s.ClientInChannel(ctx, c.ID, f.ch.ID); err != nil || !ch.Locked.IsZero() {
			t.Fatalf("the racing read = %+v, %v; want the channel before the lock", ch, err)
		}
		if ch, ok := f.s.RecentChannel(f.ch.ID); ok && ch.Locked.IsZero() {
			t.Error("RecentChannel after a racing lock: not locked")
		}
		if m, _ := f.s.Moderation(ctx, f.ch.ID); m.Locked.IsZero() {
			t.Error("Moderation after a racing lock: not locked")
		}
	})
}
