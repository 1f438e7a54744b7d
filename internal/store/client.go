package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// Client is one browser's identity in one channel: its Verto login name and
// peer id, and the password it logs in with.
type Client struct {
	ID        string
	Password  string
	ChannelID string
	Created   time.Time
	// Connected is when the signalling server last reported a login; the
	// zero time while the client is disconnected.
	Connected time.Time
}

// CreateClient adds a client to a channel with a new random id and
// password (UUIDv4s from crypto/rand).
func (s *Store) CreateClient(ctx context.Context, channelID string) (Client, error) {
	id, err := uuid.NewRandom()
	if err != nil {
		return Client{}, fmt.Errorf("create client: %w", err)
	}
	pw, err := uuid.NewRandom()
	if err != nil {
		return Client{}, fmt.Errorf("create client: %w", err)
	}
	c := Client{ID: id.String(), Password: pw.String(), ChannelID: channelID, Created: fromMicros(micros(s.now()))}
	if err := s.PutClient(ctx, c); err != nil {
		return Client{}, err
	}
	return c, nil
}

// PutClient inserts a client with the given id and password, for imports
// and tests that replay recorded traffic. The channel must exist.
func (s *Store) PutClient(ctx context.Context, c Client) error {
	if c.Created.IsZero() {
		c.Created = s.now()
	}
	var connected sql.NullInt64
	if !c.Connected.IsZero() {
		connected = sql.NullInt64{Int64: micros(c.Connected), Valid: true}
	}
	_, err := s.exec(ctx,
		`INSERT INTO clients (id, password, channel_id, created, connected) VALUES (?, ?, ?, ?, ?)`,
		c.ID, c.Password, c.ChannelID, micros(c.Created), connected)
	if isUniqueViolation(err) {
		return fmt.Errorf("put client %s: %w", c.ID, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("put client %s: %w", c.ID, err)
	}
	return nil
}

// ClientByID looks a client up by id.
func (s *Store) ClientByID(ctx context.Context, id string) (Client, error) {
	var c Client
	var created int64
	var connected sql.NullInt64
	err := s.queryRow(ctx,
		`SELECT id, password, channel_id, created, connected FROM clients WHERE id = ?`, id).
		Scan(&c.ID, &c.Password, &c.ChannelID, &created, &connected)
	if err != nil {
		return Client{}, notFound(err, "client "+id)
	}
	c.Created = fromMicros(created)
	if connected.Valid {
		c.Connected = fromMicros(connected.Int64)
	}
	return c, nil
}

// SetClientConnected records that the client logged in to the signalling
// server at the given time.
func (s *Store) SetClientConnected(ctx context.Context, id string, at time.Time) error {
	return s.execOne(ctx, "set client connected "+id,
		`UPDATE clients SET connected = ? WHERE id = ?`, micros(at), id)
}

// ClearClientConnected records that the client disconnected.
func (s *Store) ClearClientConnected(ctx context.Context, id string) error {
	return s.execOne(ctx, "clear client connected "+id,
		`UPDATE clients SET connected = NULL WHERE id = ?`, id)
}

// CountConnectedClients returns how many of a channel's clients are
// connected.
func (s *Store) CountConnectedClients(ctx context.Context, channelID string) (int, error) {
	var n int
	err := s.queryRow(ctx,
		`SELECT COUNT(*) FROM clients WHERE channel_id = ? AND connected IS NOT NULL`, channelID).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count connected clients of %s: %w", channelID, err)
	}
	return n, nil
}

// ClientInChannel returns a client together with its channel in one query,
// for the channel page of a returning browser; ErrNotFound unless the
// client exists and belongs to that channel.
func (s *Store) ClientInChannel(ctx context.Context, clientID, channelID string) (Channel, Client, error) {
	var ch Channel
	var c Client
	var owner, connected sql.NullInt64
	var chCreated, cCreated int64
	err := s.queryRow(ctx,
		`SELECT ch.id, ch.topic, ch.public, ch.owner_id, ch.created, c.id, c.password, c.created, c.connected
		 FROM clients c JOIN channels ch ON ch.id = c.channel_id
		 WHERE c.id = ? AND c.channel_id = ?`, clientID, channelID).
		Scan(&ch.ID, &ch.Topic, &ch.Public, &owner, &chCreated, &c.ID, &c.Password, &cCreated, &connected)
	if err != nil {
		return Channel{}, Client{}, notFound(err, "client "+clientID+" in channel "+channelID)
	}
	ch.OwnerID = owner.Int64
	ch.Created = fromMicros(chCreated)
	c.ChannelID = ch.ID
	c.Created = fromMicros(cCreated)
	if connected.Valid {
		c.Connected = fromMicros(connected.Int64)
	}
	return ch, c, nil
}

// ClearAllConnected marks every client disconnected and returns how many
// were marked connected. The embedded hub calls it at start-up: no client
// can be connected to a hub that has just started, and a process that died
// without a graceful shutdown left its clients marked connected.
func (s *Store) ClearAllConnected(ctx context.Context) (int64, error) {
	res, err := s.exec(ctx, `UPDATE clients SET connected = NULL WHERE connected IS NOT NULL`)
	if err != nil {
		return 0, fmt.Errorf("clear connected clients: %w", err)
	}
	return res.RowsAffected()
}
