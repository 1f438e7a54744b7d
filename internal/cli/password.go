package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// readPassword reads a new password: typed twice at a prompt without echo
// when stdin is a terminal, otherwise the first line of stdin (so scripts
// can pipe it). Never from a flag, where it would show in ps and history.
func readPassword(env Env, prompt string) (string, error) {
	if f, ok := env.Stdin.(*os.File); ok && isTerminal(f) {
		pw, err := promptNoEcho(f, env.Stderr, prompt+": ")
		if err != nil {
			return "", err
		}
		again, err := promptNoEcho(f, env.Stderr, "Again: ")
		if err != nil {
			return "", err
		}
		if pw != again {
			return "", errors.New("the passwords differ")
		}
		return pw, checkPassword(pw)
	}
	line, err := bufio.NewReader(io.LimitReader(env.Stdin, maxPasswordLen+2)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read password from stdin: %w", err)
	}
	pw := strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
	return pw, checkPassword(pw)
}

func checkPassword(pw string) error {
	switch {
	case len(pw) < minPasswordLen:
		return usagef("the password must have at least %d characters (give it on stdin or at the prompt)", minPasswordLen)
	case len(pw) > maxPasswordLen:
		return usagef("the password must have at most %d bytes", maxPasswordLen)
	}
	return nil
}

// readLine reads one line from f byte by byte, so nothing after it is
// consumed.
func readLine(f *os.File) (string, error) {
	var sb strings.Builder
	b := make([]byte, 1)
	for sb.Len() <= maxPasswordLen {
		n, err := f.Read(b)
		if n == 1 {
			if b[0] == '\n' {
				return strings.TrimSuffix(sb.String(), "\r"), nil
			}
			sb.WriteByte(b[0])
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return sb.String(), nil
			}
			return "", fmt.Errorf("read password: %w", err)
		}
	}
	return sb.String(), nil
}
