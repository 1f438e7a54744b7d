package storetest

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// Server is a PostgreSQL server of a test's own: a cluster made by initdb
// in a temporary directory, listening on a free loopback port, which the
// test may stop and start at will. It never touches the shared server
// (CHANNELS_TEST_POSTGRES, 5432). Cleanup stops it and removes its files.
type Server struct {
	t    testing.TB
	bin  string // the directory of initdb, pg_ctl, postgres
	dir  string // the cluster's data directory
	log  string
	port int
	cred *syscall.Credential // the user the server runs as when the test runs as root
}

// PrivatePostgres starts a PostgreSQL server of the test's own (trust
// authentication, user postgres). It needs the server's programs: in
// /usr/lib/postgresql/*/bin (the newest), or on PATH. Without them the
// test is skipped, or fails when the CI environment variable is set. Run
// as root (as in CI containers), the server runs as the postgres user,
// since PostgreSQL refuses to run as root.
func PrivatePostgres(t testing.TB) *Server {
	t.Helper()
	bin, err := postgresBin()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("a private PostgreSQL is required in CI: %v", err)
		}
		t.Skipf("no PostgreSQL server programs for a private server: %v", err)
	}
	s := &Server{t: t, bin: bin}
	root, err := os.MkdirTemp("", "channels-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	s.dir = filepath.Join(root, "data")
	s.log = filepath.Join(root, "server.log")
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root, a private PostgreSQL needs the postgres user: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		s.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chmod(root, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(root, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := s.run("initdb", "-D", s.dir, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8", "--locale", "C"); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	s.port = freePort(t)
	conf := fmt.Sprintf("\nlisten_addresses = '127.0.0.1'\nport = %d\nunix_socket_directories = '%s'\n"+
		"fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 100\n", s.port, root)
	f, err := os.OpenFile(filepath.Join(s.dir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(conf); err != nil {
		t.Fatal(err)
	}
	f.Close()
	s.Start()
	t.Cleanup(func() {
		_, _ = s.run("pg_ctl", "-D", s.dir, "-m", "immediate", "-w", "stop")
	})
	return s
}

// postgresBin finds the directory of the server's programs.
func postgresBin() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "pg_ctl")); err == nil {
			return d, nil
		}
	}
	p, err := exec.LookPath("pg_ctl")
	if err != nil {
		return "", fmt.Errorf("pg_ctl not in /usr/lib/postgresql/*/bin nor on PATH: %w", err)
	}
	return filepath.Dir(p), nil
}

func version(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func (s *Server) run(name string, args ...string) ([]byte, error) {
	cmd := exec.Command(filepath.Join(s.bin, name), args...)
	cmd.Dir = filepath.Dir(s.dir)
	if s.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.Bytes(), err
}

// AdminURL is the URL of the server's postgres database.
func (s *Server) AdminURL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", s.port)
}

// Addr is the server's "host:port".
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Start starts the server and waits until it takes connections.
func (s *Server) Start() {
	s.t.Helper()
	if out, err := s.run("pg_ctl", "-D", s.dir, "-l", s.log, "-w", "-t", "60", "start"); err != nil {
		logs, _ := os.ReadFile(s.log)
		s.t.Fatalf("pg_ctl start: %v\n%s\n%s", err, out, logs)
	}
	s.waitReady()
}

// Stop stops the server in mode ("fast": sessions are ended with 57P01;
// "immediate": a crash) and waits until it is down.
func (s *Server) Stop(mode string) {
	s.t.Helper()
	if out, err := s.run("pg_ctl", "-D", s.dir, "-m", mode, "-w", "-t", "60", "stop"); err != nil {
		s.t.Fatalf("pg_ctl stop: %v\n%s", err, out)
	}
}

// Restart is "pg_ctl restart -m fast": every session is ended (57P01) and
// the server is back moments later.
func (s *Server) Restart() {
	s.t.Helper()
	if out, err := s.run("pg_ctl", "-D", s.dir, "-l", s.log, "-m", "fast", "-w", "-t", "60", "restart"); err != nil {
		logs, _ := os.ReadFile(s.log)
		s.t.Fatalf("pg_ctl restart: %v\n%s\n%s", err, out, logs)
	}
	s.waitReady()
}

func (s *Server) waitReady() {
	s.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		db, err := sql.Open("pgx", s.AdminURL())
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			err = db.PingContext(ctx)
			cancel()
			db.Close()
		}
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("private PostgreSQL not ready: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Store returns a fresh, migrated store in a new database of the server.
func (s *Server) Store(t testing.TB) Backend {
	t.Helper()
	u := s.DatabaseURL(t)
	return Backend{Name: "postgres", Store: openStore(t, u), URL: u}
}

// DatabaseURL creates a new database on the server and returns its URL.
func (s *Server) DatabaseURL(t testing.TB) string {
	t.Helper()
	return newDatabase(t, s.AdminURL(), false) // the whole cluster goes with the test
}
