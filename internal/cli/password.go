package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"
)

// readPassword reads a new password: typed twice at a prompt without echo
// when stdin is a terminal, otherwise the first line of stdin (so scripts
// can pipe it). Never from a flag, where it would show in ps and history.
//
// At the prompt, ctx ending (Ctrl-C: Main turns SIGINT into that) ends
// the reading with errInterrupted and the terminal as it was.
func readPassword(ctx context.Context, env Env, prompt string) (string, error) {
	if f, ok := env.Stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		pw, err := promptNoEcho(ctx, f, env.Stderr, prompt+": ")
		if err != nil {
			return "", err
		}
		again, err := promptNoEcho(ctx, f, env.Stderr, "Again: ")
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

// errInterrupted ends a password prompt that was interrupted.
var errInterrupted = errors.New("interrupted at the password prompt; nothing was changed")

// promptNoEcho prints prompt and reads a line from the terminal f with
// its echo off, until ctx ends. term.ReadPassword restores the terminal
// when it returns, but it does not watch ctx, and Main's signal handling
// keeps Ctrl-C from ending the process; so it reads in a goroutine, and
// on ctx's end the terminal is restored here and the read abandoned
// (its goroutine ends with the process, which returns to the shell).
func promptNoEcho(ctx context.Context, f *os.File, out io.Writer, prompt string) (string, error) {
	fd := int(f.Fd())
	state, err := term.GetState(fd)
	if err != nil {
		return "", fmt.Errorf("read password: %w", err)
	}
	fmt.Fprint(out, prompt)
	type result struct {
		b   []byte
		err error
	}
	read := make(chan result, 1)
	go func() {
		b, err := term.ReadPassword(fd)
		read <- result{b, err}
	}()
	select {
	case r := <-read:
		fmt.Fprintln(out)
		if r.err != nil {
			return "", fmt.Errorf("read password: %w", r.err)
		}
		return strings.TrimSuffix(string(r.b), "\r"), nil
	case <-ctx.Done():
		fmt.Fprintln(out)
		if err := term.Restore(fd, state); err != nil {
			return "", fmt.Errorf("%w (restore the terminal: %v; run reset)", errInterrupted, err)
		}
		return "", errInterrupted
	}
}
