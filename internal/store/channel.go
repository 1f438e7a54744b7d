package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// Channel is a room people meet in, named by a random UUIDv4.
type Channel struct {
	ID      string
	Topic   string
	Public  bool
	OwnerID int64 // 0: no owner
	Created time.Time
	// Locked is when the channel was locked (moderation.go); the zero
	// time while it is not.
	Locked time.Time
	// RemovalsUntil is the latest end of the channel's removals: after it
	// none is active, and nothing need look them up. Zero: never any.
	RemovalsUntil time.Time
}

func nullID(id int64) sql.NullInt64 { return sql.NullInt64{Int64: id, Valid: id != 0} }

// CreateChannel adds a channel with a new random id.
func (s *Store) CreateChannel(ctx context.Context, topic string, public bool, ownerID int64) (Channel, error) {
	id, err := uuid.NewRandom()
	if err != nil {
		return Channel{}, fmt.Errorf("create channel: %w", err)
	}
	c := Channel{ID: id.String(), Topic: topic, Public: public, OwnerID: ownerID, Created: fromMicros(micros(s.now()))}
	if err := s.PutChannel(ctx, c); err != nil {
		return Channel{}, err
	}
	return c, nil
}

// PutChannel inserts a channel with the given id, for imports and tests
// that replay recorded traffic; ErrConflict if the id is taken.
func (s *Store) PutChannel(ctx context.Context, c Channel) error {
	if c.Created.IsZero() {
		c.Created = s.now()
	}
	_, err := s.exec(ctx,
		`INSERT INTO channels (id, topic, public, owner_id, created) VALUES (?, ?, ?, ?, ?)`,
		c.ID, c.Topic, c.Public, nullID(c.OwnerID), micros(c.Created))
	if isUniqueViolation(err) {
		return fmt.Errorf("put channel %s: %w", c.ID, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("put channel %s: %w", c.ID, err)
	}
	return nil
}

const channelColumns = `id, topic, public, owner_id, created, locked, removals_until`

func scanChannel(row scanner) (Channel, error) {
	var c Channel
	var owner, locked, removals sql.NullInt64
	var created int64
	if err := row.Scan(&c.ID, &c.Topic, &c.Public, &owner, &created, &locked, &removals); err != nil {
		return Channel{}, err
	}
	c.OwnerID = owner.Int64
	c.Created = fromMicros(created)
	c.Locked = nullTime(locked)
	c.RemovalsUntil = nullTime(removals)
	return c, nil
}

// nullTime is the time a nullable column holds; NULL is the zero time.
func nullTime(us sql.NullInt64) time.Time {
	if !us.Valid {
		return time.Time{}
	}
	return fromMicros(us.Int64)
}

// ChannelByID looks a channel up by id.
func (s *Store) ChannelByID(ctx context.Context, id string) (Channel, error) {
	c, err := scanChannel(s.queryRow(ctx, `SELECT `+channelColumns+` FROM channels WHERE id = ?`, id))
	if err != nil {
		return Channel{}, notFound(err, "channel "+id)
	}
	return c, nil
}

// UpdateChannel saves a channel's topic and visibility.
func (s *Store) UpdateChannel(ctx context.Context, c Channel) error {
	defer s.forgetChannel(c.ID)
	return s.execOne(ctx, "update channel "+c.ID,
		`UPDATE channels SET topic = ?, public = ? WHERE id = ?`, c.Topic, c.Public, c.ID)
}

// DeleteChannel removes a channel and, with it, its clients.
func (s *Store) DeleteChannel(ctx context.Context, id string) error {
	defer s.forgetChannel(id)
	return s.execOne(ctx, "delete channel "+id, `DELETE FROM channels WHERE id = ?`, id)
}

// PublicChannels returns the public channels, newest first.
func (s *Store) PublicChannels(ctx context.Context) ([]Channel, error) {
	return s.channels(ctx, "list public channels",
		`SELECT `+channelColumns+` FROM channels WHERE public = ? ORDER BY created DESC, id`, true)
}

// Channels returns every channel, newest first.
func (s *Store) Channels(ctx context.Context) ([]Channel, error) {
	return s.channels(ctx, "list channels", `SELECT `+channelColumns+` FROM channels ORDER BY created DESC, id`)
}

// ChannelsOwnedBy returns the channels a user owns, newest first.
func (s *Store) ChannelsOwnedBy(ctx context.Context, ownerID int64) ([]Channel, error) {
	return s.channels(ctx, "list channels of owner",
		`SELECT `+channelColumns+` FROM channels WHERE owner_id = ? ORDER BY created DESC, id`, ownerID)
}

// CountChannels returns the number of channels.
func (s *Store) CountChannels(ctx context.Context) (int, error) {
	var n int
	if err := s.queryRow(ctx, `SELECT COUNT(*) FROM channels`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count channels: %w", err)
	}
	return n, nil
}

func (s *Store) channels(ctx context.Context, what, query string, args ...any) ([]Channel, error) {
	rows, err := s.query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer rows.Close()
	var out []Channel
	for rows.Next() {
		c, err := scanChannel(rows)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}
