//go:build !linux

package cli

import (
	"io"
	"os"
)

// isTerminal is false off Linux: the password is read from stdin as a
// line, without a prompt.
func isTerminal(*os.File) bool { return false }

func promptNoEcho(f *os.File, _ io.Writer, _ string) (string, error) { return readLine(f) }
