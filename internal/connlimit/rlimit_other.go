//go:build !unix

package connlimit

// nofile is unknown outside Unix.
func nofile() (uint64, bool) { return 0, false }
