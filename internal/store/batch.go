package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Batches: several small writes in one transaction. On PostgreSQL each
// commit waits for its WAL flush; the embedded hub's login and disconnect
// reports, one commit each, were what held its logins below their floor.
// Batch runs a function whose store calls all join one transaction, so
// the code that writes a single report (the /fsapi report handlers) is
// the code that writes a batch of them: no second path to keep in step.
//
// Only the store's single-statement methods join a batch (queryRow, query
// and exec run on its transaction). A method that opens a transaction of
// its own (ReserveLogin) fails inside one rather than wait for the
// batch's lock (SQLite's single writer) or a second connection.

// batchKey is the context key of the transaction Batch runs fn in.
type batchKey struct{}

// batchTx is the transaction of one Batch call, for the store it belongs
// to (a context may cross stores in tests).
type batchTx struct {
	s     *Store
	tx    *sql.Tx
	stmts map[string]*sql.Stmt // prepared on tx (see stmt); closed with it
}

// ErrNestedTx is the error of a method that opens a transaction of its own
// when called inside Batch.
var ErrNestedTx = errors.New("store: a transaction inside a batch")

// Batch runs fn with a context on which the store's statements all run in
// one transaction: committed when fn returns nil, rolled back otherwise
// (fn's error returned), so that the writes are applied all together or
// not at all. Statements in it are not retried after a lost connection
// (retry.go): the whole batch fails instead, and its caller decides. A
// Batch inside a Batch joins the outer one.
func (s *Store) Batch(ctx context.Context, fn func(ctx context.Context) error) error {
	if s.txOf(ctx) != nil {
		return fn(ctx)
	}
	tx, err := s.begin(ctx)
	if err != nil {
		return fmt.Errorf("batch: begin: %w", err)
	}
	defer tx.Rollback()
	if err := fn(context.WithValue(ctx, batchKey{}, &batchTx{s: s, tx: tx, stmts: map[string]*sql.Stmt{}})); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("batch: commit: %w", err)
	}
	return nil
}

// txOf returns the Batch ctx is in, if any and if it is this store's.
func (s *Store) txOf(ctx context.Context) *batchTx {
	if b, ok := ctx.Value(batchKey{}).(*batchTx); ok && b.s == s {
		return b
	}
	return nil
}

// stmt is query's statement on the batch's transaction, on its own
// connection: the one Store.stmt prepared, if any (database/sql prepares
// it on that connection the first time it runs there), else one prepared
// on the transaction alone. Never Store.stmt, which may wait for a second
// pooled connection while the batch holds one (and, on SQLite, the write
// lock every waiting writer's connection is queued for): a first batch
// after a start could then wait out its whole timeout.
func (b *batchTx) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	if st := b.s.prepared(query); st != nil {
		return b.tx.StmtContext(ctx, st), nil
	}
	if st, ok := b.stmts[query]; ok {
		return st, nil
	}
	st, err := b.tx.PrepareContext(ctx, b.s.q(query))
	if err != nil {
		return nil, err
	}
	b.stmts[query] = st
	return st, nil
}
