package store

import (
	"context"
	"fmt"
	"time"
)

// Trusted devices are browsers that signed in to an account; the web
// application gives each a long-lived cookie and keeps only its token's
// hash here. They are bounded per user (AddTrustedDevice) and expire (the
// sweeper deletes them), so an account's row count does not grow with its
// sign-ins.

// AddTrustedDevice records a device of a user until expires, then deletes
// the user's devices beyond the keep that expire last (with one lifetime
// for all, the oldest go first).
func (s *Store) AddTrustedDevice(ctx context.Context, userID int64, tokenHash []byte, expires time.Time, keep int) error {
	if _, err := s.exec(ctx,
		`INSERT INTO trusted_devices (token_hash, user_id, expires) VALUES (?, ?, ?)`,
		tokenHash, userID, micros(expires)); err != nil {
		return fmt.Errorf("add trusted device of user %d: %w", userID, err)
	}
	if _, err := s.exec(ctx,
		`DELETE FROM trusted_devices WHERE user_id = ? AND token_hash NOT IN (
		   SELECT token_hash FROM trusted_devices WHERE user_id = ?
		   ORDER BY expires DESC, token_hash LIMIT ?)`,
		userID, userID, keep); err != nil {
		return fmt.Errorf("trim trusted devices of user %d: %w", userID, err)
	}
	return nil
}

// TrustedDeviceUser returns the user of the device whose token hashes to
// tokenHash, if it is unexpired at now; ErrNotFound otherwise.
func (s *Store) TrustedDeviceUser(ctx context.Context, tokenHash []byte, now time.Time) (int64, error) {
	var id int64
	err := s.queryRow(ctx,
		`SELECT user_id FROM trusted_devices WHERE token_hash = ? AND expires > ?`,
		tokenHash, micros(now)).Scan(&id)
	if err != nil {
		return 0, notFound(err, "trusted device")
	}
	return id, nil
}

// DeleteTrustedDevice forgets one device; a device not there is no error.
func (s *Store) DeleteTrustedDevice(ctx context.Context, tokenHash []byte) error {
	if _, err := s.exec(ctx, `DELETE FROM trusted_devices WHERE token_hash = ?`, tokenHash); err != nil {
		return fmt.Errorf("delete trusted device: %w", err)
	}
	return nil
}

// CountTrustedDevices returns how many devices a user has, expired or not.
func (s *Store) CountTrustedDevices(ctx context.Context, userID int64) (int, error) {
	var n int
	err := s.queryRow(ctx, `SELECT COUNT(*) FROM trusted_devices WHERE user_id = ?`, userID).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count trusted devices of user %d: %w", userID, err)
	}
	return n, nil
}

// deleteTrustedDevicesOfUser forgets every device of the named user: after
// a password change, no browser keeps the exemption the old one earned.
func (s *Store) deleteTrustedDevicesOfUser(ctx context.Context, name string) error {
	if _, err := s.exec(ctx,
		`DELETE FROM trusted_devices WHERE user_id IN (SELECT id FROM users WHERE name = ?)`, name); err != nil {
		return fmt.Errorf("delete trusted devices of user %s: %w", name, err)
	}
	return nil
}

func (s *Store) deleteTrustedDevicesExpiredAt(ctx context.Context, now time.Time) (int64, error) {
	res, err := s.exec(ctx, `DELETE FROM trusted_devices WHERE expires <= ?`, micros(now))
	if err != nil {
		return 0, fmt.Errorf("delete expired trusted devices: %w", err)
	}
	return res.RowsAffected()
}
