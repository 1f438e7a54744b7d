package store_test

import (
	"crypto/sha256"
	"errors"
	"strconv"
	"testing"
	"time"

	"channels/internal/store"
	"channels/internal/store/storetest"
)

// TestTrustedDevices: a device is found for its user until it expires; a
// user keeps at most the newest keep devices; the sweeper deletes expired
// ones; a password change and deleting the user forget them.
func TestTrustedDevices(t *testing.T) {
	for _, b := range storetest.Stores(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := t.Context()
			s := b.Store
			alice, err := s.CreateUser(ctx, "alice", "h", false)
			if err != nil {
				t.Fatal(err)
			}
			bob, err := s.CreateUser(ctx, "bob", "h", false)
			if err != nil {
				t.Fatal(err)
			}
			hash := func(i int) []byte { h := sha256.Sum256([]byte(strconv.Itoa(i))); return h[:] }
			t0 := time.Now()
			const keep = 3
			for i := range 5 {
				if err := s.AddTrustedDevice(ctx, alice.ID, hash(i), t0.Add(time.Duration(i+1)*time.Hour), keep); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.AddTrustedDevice(ctx, bob.ID, hash(100), t0.Add(time.Hour), keep); err != nil {
				t.Fatal(err)
			}
			if n, err := s.CountTrustedDevices(ctx, alice.ID); err != nil || n != keep {
				t.Fatalf("alice has %d devices (%v), want %d", n, err, keep)
			}
			tests := []struct {
				name string
				hash []byte
				at   time.Duration
				want int64 // 0: not found
			}{
				{"trimmed oldest", hash(0), 0, 0},
				{"trimmed second", hash(1), 0, 0},
				{"kept", hash(2), 0, alice.ID},
				{"newest", hash(4), 0, alice.ID},
				{"other user", hash(100), 0, bob.ID},
				{"unknown", hash(999), 0, 0},
				{"expired", hash(2), 3 * time.Hour, 0},
				{"not yet expired", hash(3), 3 * time.Hour, alice.ID},
			}
			for _, tt := range tests {
				id, err := s.TrustedDeviceUser(ctx, tt.hash, t0.Add(tt.at))
				if tt.want == 0 && !errors.Is(err, store.ErrNotFound) || tt.want != 0 && (err != nil || id != tt.want) {
					t.Errorf("%s: %d, %v; want %d", tt.name, id, err, tt.want)
				}
			}

			res, err := s.Sweep(ctx, store.SweepRules{Now: t0.Add(4 * time.Hour)})
			if err != nil || res.Devices != 3 { // alice's 2 and 3, bob's
				t.Errorf("sweep: %+v, %v; want 3 devices", res, err)
			}
			if n, _ := s.CountTrustedDevices(ctx, alice.ID); n != 1 {
				t.Errorf("alice has %d devices after the sweep, want 1", n)
			}

			if err := s.DeleteTrustedDevice(ctx, hash(4)); err != nil {
				t.Fatal(err)
			}
			if _, err := s.TrustedDeviceUser(ctx, hash(4), t0); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("deleted device: %v", err)
			}

			if err := s.AddTrustedDevice(ctx, alice.ID, hash(5), t0.Add(time.Hour), keep); err != nil {
				t.Fatal(err)
			}
			if err := s.AddTrustedDevice(ctx, bob.ID, hash(101), t0.Add(time.Hour), keep); err != nil {
				t.Fatal(err)
			}
			if err := s.SetUserPassword(ctx, "alice", "new"); err != nil {
				t.Fatal(err)
			}
			if n, _ := s.CountTrustedDevices(ctx, alice.ID); n != 0 {
				t.Errorf("alice has %d devices after a password change, want 0", n)
			}
			if n, _ := s.CountTrustedDevices(ctx, bob.ID); n != 1 {
				t.Errorf("bob has %d devices after alice's password change, want 1", n)
			}
		})
	}
}
