package web

import (
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"channels/internal/lockedbuf"
	"channels/internal/store"
)

// smallDisk mounts a tmpfs of size bytes for the test and returns its
// directory. Mounting needs root: elsewhere the test is skipped, except
// under CI (CI set), where that is a failure.
func smallDisk(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0700", "tmpfs", dir).CombinedOutput()
	if err != nil {
		msg := "cannot mount a tmpfs (needs root): " + strings.TrimSpace(string(out)) + " " + err.Error()
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", dir, err, out)
		}
	})
	return dir
}

// fill writes a file in dir until the file system has no room left.
func fill(t *testing.T, dir string) (path string) {
	t.Helper()
	path = filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill %s: %v", dir, err)
			}
			break
		}
	}
	for _, n := range []int{4096, 512, 1} { // the last partial pages
		for {
			if _, err := f.Write(chunk[:n]); err != nil {
				break
			}
		}
	}
	return path
}

// TestFullDisk: with the SQLite database on a file system that fills up
// (a real tmpfs, filled until writes fail), /healthz answers 503 "disk
// full" while it is full and 200 again within about a second of space
// being freed; a sign-in with the right password meanwhile gets an error
// page asking to try again (503, not a bare 500) and logs no "signed in",
// since its session was never saved. Before, /healthz said 200 "ok"
// throughout and the sign-in was logged at INFO, then answered 500.
func TestFullDisk(t *testing.T) {
	dir := smallDisk(t, "4m")
	st, err := store.Open(t.Context(), filepath.Join(dir, "channels.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s := newSite(t, st, nil)
	var logs lockedbuf.Buffer
	s.srv.log = slog.New(slog.NewTextHandler(&logs, nil))
	s.user("ann", "ann's password", false)

	healthz := func() response { return s.browser().get("/healthz") }
	// waitHealth polls /healthz until it answers status; it returns how
	// long that took.
	waitHealth := func(status int, within time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		for {
			r := healthz()
			if r.status == status {
				return time.Since(start)
			}
			if time.Since(start) > within {
				t.Fatalf("/healthz still %d %q after %v, want %d", r.status, r.body, within, status)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	signIn := func() response {
		return s.browser().post("/signin", url.Values{"name": {"ann"}, "password": {"ann's password"}})
	}

	if r := healthz(); r.status != http.StatusOK || r.body != "ok\n" {
		t.Fatalf("healthy: %d %q", r.status, r.body)
	}

	filler := fill(t, dir)
	took := waitHealth(http.StatusServiceUnavailable, 2*time.Second)
	r := healthz()
	t.Logf("full: /healthz %d %q after %v", r.status, r.body, took.Round(time.Millisecond))
	if r.body != "disk full\n" {
		t.Errorf("/healthz while full says %q, want \"disk full\"", r.body)
	}

	logs0 := len(logs.String())
	r = signIn()
	after := logs.String()[logs0:]
	if r.status != http.StatusServiceUnavailable || !strings.Contains(r.body, "try again") || strings.Contains(r.body, "goroutine ") {
		t.Errorf("sign-in while full: %d, want 503 and an error page asking to try again:\n%s\n%s", r.status, r.body, after)
	}
	if r.header.Get("Location") != "" {
		t.Errorf("sign-in while full redirects to %q", r.header.Get("Location"))
	}
	if strings.Contains(after, `msg="signed in"`) {
		t.Errorf("a sign-in whose session was not saved is logged as signed in:\n%s", after)
	}
	if !strings.Contains(after, `level=ERROR msg="sign-in not saved"`) {
		t.Errorf("the failed sign-in is not logged as such:\n%s", after)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	took = waitHealth(http.StatusOK, 1500*time.Millisecond)
	t.Logf("space freed: /healthz 200 after %v", took.Round(time.Millisecond))
	if r := signIn(); r.status != http.StatusSeeOther {
		t.Errorf("sign-in after space was freed: %d\n%s", r.status, r.body)
	}
	if !strings.Contains(logs.String(), `msg="signed in" user=ann`) {
		t.Errorf("the sign-in after space was freed is not logged:\n%s", logs.String())
	}
}
