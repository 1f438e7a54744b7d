package store

import (
	"context"
	"fmt"
	"time"
)

// User is an account that can sign in and manage channels.
type User struct {
	ID           int64
	Name         string
	PasswordHash string
	Admin        bool
	Created      time.Time
}

// CreateUser adds a user; ErrConflict if the name is taken.
func (s *Store) CreateUser(ctx context.Context, name, passwordHash string, admin bool) (User, error) {
	u := User{Name: name, PasswordHash: passwordHash, Admin: admin, Created: fromMicros(micros(s.now()))}
	err := s.queryRow(ctx,
		`INSERT INTO users (name, password_hash, admin, created) VALUES (?, ?, ?, ?) RETURNING id`,
		name, passwordHash, admin, micros(u.Created)).Scan(&u.ID)
	if isUniqueViolation(err) {
		return User{}, fmt.Errorf("create user %q: %w", name, ErrConflict)
	}
	if err != nil {
		return User{}, fmt.Errorf("create user %q: %w", name, err)
	}
	return u, nil
}

const userColumns = `id, name, password_hash, admin, created`

func scanUser(row scanner) (User, error) {
	var u User
	var created int64
	if err := row.Scan(&u.ID, &u.Name, &u.PasswordHash, &u.Admin, &created); err != nil {
		return User{}, err
	}
	u.Created = fromMicros(created)
	return u, nil
}

// UserByName looks a user up by name.
func (s *Store) UserByName(ctx context.Context, name string) (User, error) {
	u, err := scanUser(s.queryRow(ctx, `SELECT `+userColumns+` FROM users WHERE name = ?`, name))
	if err != nil {
		return User{}, notFound(err, "user "+name)
	}
	return u, nil
}

// UserByID looks a user up by id.
func (s *Store) UserByID(ctx context.Context, id int64) (User, error) {
	u, err := scanUser(s.queryRow(ctx, `SELECT `+userColumns+` FROM users WHERE id = ?`, id))
	if err != nil {
		return User{}, notFound(err, fmt.Sprintf("user %d", id))
	}
	return u, nil
}

// SetUserPassword replaces a user's password hash and forgets the user's
// trusted devices.
func (s *Store) SetUserPassword(ctx context.Context, name, passwordHash string) error {
	if err := s.execOne(ctx, "set password of user "+name,
		`UPDATE users SET password_hash = ? WHERE name = ?`, passwordHash, name); err != nil {
		return err
	}
	return s.deleteTrustedDevicesOfUser(ctx, name)
}

// ListUsers returns every user, by name.
func (s *Store) ListUsers(ctx context.Context) ([]User, error) {
	rows, err := s.query(ctx, `SELECT `+userColumns+` FROM users ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	defer rows.Close()
	var out []User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("list users: %w", err)
		}
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return out, nil
}

// execOne runs a statement that must affect exactly one row: none is
// ErrNotFound.
func (s *Store) execOne(ctx context.Context, what, query string, args ...any) error {
	res, err := s.exec(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	return nil
}
