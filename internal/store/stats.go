package store

import "database/sql"

// PoolStats reports the connection pool's statistics (open, in use, idle
// connections, waits), for metrics. It takes no connection.
func (s *Store) PoolStats() sql.DBStats { return s.db.Stats() }
