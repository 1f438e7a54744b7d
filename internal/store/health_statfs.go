//go:build linux || darwin || freebsd || dragonfly

package store

import (
	"os"

	"golang.org/x/sys/unix"
)

// freeBytes is the space left for this process on the file system
// holding dir (root may use the blocks reserved for it).
func freeBytes(dir string) (free uint64, known bool, err error) {
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil {
		return 0, false, err
	}
	blocks := uint64(fs.Bavail)
	if os.Geteuid() == 0 {
		blocks = uint64(fs.Bfree)
	}
	return blocks * uint64(fs.Bsize), true, nil
}
