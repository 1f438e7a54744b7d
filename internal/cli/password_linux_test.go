package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal: the controlling side, and the terminal
// side a command reads as its stdin.
func openPTY(t *testing.T) (ctl, tty *os.File) {
	t.Helper()
	ctl, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { ctl.Close() })
	if err := unix.IoctlSetPointerInt(int(ctl.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(ctl.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	tty, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tty.Close() })
	return ctl, tty
}

// TestPasswordPrompt types a password twice at the prompt of a real
// (pseudo) terminal: it is read without being echoed, and the terminal's
// echo is back on afterwards.
func TestPasswordPrompt(t *testing.T) {
	ctl, tty := openPTY(t)
	var prompts syncBuffer
	type result struct {
		pw  string
		err error
	}
	done := make(chan result, 1)
	go func() {
		pw, err := readPassword(t.Context(), Env{Stdin: tty, Stderr: &prompts}, "Password for alice")
		done <- result{pw, err}
	}()
	echo := func() bool { return ttyEcho(t, tty) }
	typeAt := func(prompt, line string) {
		t.Helper()
		waitPrompt(t, tty, &prompts, prompt)
		if _, err := ctl.WriteString(line); err != nil {
			t.Fatal(err)
		}
	}
	typeAt("Password for alice: ", "correct horse\n")
	typeAt("Again: ", "correct horse\r\n")
	select {
	case r := <-done:
		if r.err != nil || r.pw != "correct horse" {
			t.Fatalf("readPassword = %q, %v", r.pw, r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("readPassword did not return")
	}
	if !echo() {
		t.Error("the terminal's echo is still off")
	}
	if seen := echoed(t, ctl); strings.Contains(seen, "horse") {
		t.Errorf("the terminal echoed the password: %q", seen)
	}
}

// TestPasswordPromptInterrupted: Ctrl-C at the prompt (Main's context
// ending on SIGINT) ends it at once with errInterrupted and the
// terminal's echo back on. (Before, the prompt kept waiting for a line
// and Ctrl-C did nothing.)
func TestPasswordPromptInterrupted(t *testing.T) {
	ctl, tty := openPTY(t)
	var prompts syncBuffer
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := readPassword(ctx, Env{Stdin: tty, Stderr: &prompts}, "Password for alice")
		done <- err
	}()
	waitPrompt(t, tty, &prompts, "Password for alice: ")
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, errInterrupted) {
			t.Fatalf("readPassword = %v, want %v", err, errInterrupted)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("readPassword ignored the interruption")
	}
	if !ttyEcho(t, tty) {
		t.Error("the terminal's echo is still off")
	}
	if seen := echoed(t, ctl); !strings.Contains(seen, "probe") {
		t.Errorf("the terminal does not echo after the interruption: %q", seen)
	}
}

// ttyEcho reports whether the terminal echoes what is typed.
func ttyEcho(t *testing.T, tty *os.File) bool {
	t.Helper()
	tio, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	return tio.Lflag&unix.ECHO != 0
}

// waitPrompt waits until prompt is up and the terminal's echo is off:
// what is typed before would be echoed by the terminal itself.
func waitPrompt(t *testing.T, tty *os.File, prompts *syncBuffer, prompt string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.HasSuffix(prompts.String(), prompt) || ttyEcho(t, tty) {
		if time.Now().After(deadline) {
			t.Fatalf("no prompt %q with echo off; prompts so far %q", prompt, prompts.String())
		}
		time.Sleep(time.Millisecond)
	}
}

// echoed types a probe line and returns what the terminal echoed up to
// it: everything it echoed since it was opened.
func echoed(t *testing.T, ctl *os.File) string {
	t.Helper()
	if _, err := ctl.WriteString("probe\n"); err != nil {
		t.Fatal(err)
	}
	var seen bytes.Buffer
	buf := make([]byte, 4096)
	for !strings.Contains(seen.String(), "probe") {
		ctl.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := ctl.Read(buf)
		seen.Write(buf[:n])
		if err != nil {
			t.Fatalf("read the terminal's echo: %v (so far %q)", err, seen.String())
		}
	}
	return seen.String()
}
