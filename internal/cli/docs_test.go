package cli

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"channels/internal/config"
	"channels/internal/store/storetest"
)

// The files operators copy from docs/ are tested here: the systemd unit
// and its environment file name only settings that exist, and the unit
// passes systemd's own checks; the nginx and Caddy examples run, in front
// of the assembled app, and do what their comments promise.

const docsDir = "../../docs"

// docBlock returns a code block of a file in docs/: the first one, in
// its "## section", that starts with opening (the fence and what follows
// it, which the block returned lacks).
func docBlock(t *testing.T, file, section, opening string) string {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join(docsDir, file))
	if err != nil {
		t.Fatal(err)
	}
	_, text, ok := strings.Cut(string(doc), "\n## "+section+"\n")
	if !ok {
		t.Fatalf("docs/%s has no %q section", file, "## "+section)
	}
	text, _, _ = strings.Cut(text, "\n## ") // the section only
	_, block, ok := strings.Cut(text, opening)
	if !ok {
		t.Fatalf("docs/%s's %q section has no block starting %q", file, section, opening)
	}
	block, _, ok = strings.Cut(block, "```")
	if !ok {
		t.Fatalf("unterminated code block in docs/%s", file)
	}
	return block
}

// tool finds a program the test needs, or skips (fails under CI) without
// it; scripts/test installs them.
func tool(t *testing.T, name, pkg string) string {
	t.Helper()
	for _, p := range []string{name, "/usr/sbin/" + name} { // sbin: not on every user's PATH
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s not found: install Debian's %s", name, pkg)
	}
	t.Skipf("%s not found; install Debian's %s to run this test", name, pkg)
	return ""
}

// serveFlags are the flags of channels serve.
func serveFlags() map[string]bool {
	cfg := config.Default()
	out := map[string]bool{}
	fs := cfg.FlagSet("serve")
	for _, name := range []string{"h", "help"} {
		out[name] = false
	}
	fs.VisitAll(func(f *flag.Flag) { out[f.Name] = true })
	return out
}

func TestSystemdUnit(t *testing.T) {
	unit, err := os.ReadFile(filepath.Join(docsDir, "channels.service"))
	if err != nil {
		t.Fatal(err)
	}
	flags := serveFlags()
	var execStart string
	for line := range strings.Lines(string(unit)) {
		line = strings.TrimSpace(line)
		if v, ok := strings.CutPrefix(line, "ExecStart="); ok {
			execStart = v
		}
		if v, ok := strings.CutPrefix(line, "Environment="); ok {
			name, _, _ := strings.Cut(strings.Trim(v, `"`), "=")
			checkEnvName(t, name, flags)
		}
	}
	fields := strings.Fields(execStart)
	if len(fields) < 2 || fields[1] != "serve" {
		t.Fatalf("ExecStart=%s: want channels serve …", execStart)
	}
	for _, f := range fields[2:] {
		if name, ok := strings.CutPrefix(f, "-"); ok {
			name, _, _ = strings.Cut(strings.TrimPrefix(name, "-"), "=")
			if !flags[name] {
				t.Errorf("ExecStart passes -%s, which channels serve does not take", name)
			}
		}
	}
	// What the unit promises in its comments and OPERATIONS.md.
	for _, want := range []string{"DynamicUser=yes", "StateDirectory=channels", "ProtectSystem=strict", "ProtectHome=yes",
		"PrivateTmp=yes", "NoNewPrivileges=yes", "CapabilityBoundingSet=\n", "SystemCallFilter=@system-service",
		"RestrictAddressFamilies=", "MemoryDenyWriteExecute=yes", "EnvironmentFile=/etc/channels/channels.env"} {
		if !strings.Contains(string(unit), "\n"+want) {
			t.Errorf("the unit lacks %q", want)
		}
	}

	// systemd's own checks, with ExecStart pointing at a program that
	// exists here.
	analyze := tool(t, "systemd-analyze", "systemd")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	local := strings.ReplaceAll(string(unit), "/usr/local/bin/channels", self)
	if err := os.WriteFile(filepath.Join(dir, "channels.service"), []byte(local), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), analyze, "verify", "./channels.service")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	cmd = exec.CommandContext(t.Context(), analyze, "security", "--offline=yes", "--no-pager", "./channels.service")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	m := regexp.MustCompile(`Overall exposure level for channels.service: (\d+\.\d)`).FindSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	// 0 is a service that can do nothing; systemd calls below 2 "OK".
	if level, _ := strconv.ParseFloat(string(m[1]), 64); level > 2.0 {
		t.Errorf("exposure level %.1f, want at most 2.0:\n%s", level, out)
	}
}

// checkEnvName fails unless name is the variable of a serve flag.
func checkEnvName(t *testing.T, name string, flags map[string]bool) {
	t.Helper()
	flag, ok := strings.CutPrefix(name, "CHANNELS_")
	if !ok {
		return
	}
	flag = strings.ToLower(strings.ReplaceAll(flag, "_", "-"))
	if !flags[flag] {
		t.Errorf("%s names no flag of channels serve", name)
	}
}

// TestEnvironmentFile: every variable of docs/channels.env, set or
// commented out, is a setting, and the ones set make a valid
// configuration.
func TestEnvironmentFile(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(docsDir, "channels.env"))
	if err != nil {
		t.Fatal(err)
	}
	flags := serveFlags()
	set := map[string]string{}
	for line := range strings.Lines(string(b)) {
		line = strings.TrimSpace(line)
		commented := strings.HasPrefix(line, "#")
		name, value, ok := strings.Cut(strings.TrimPrefix(line, "#"), "=")
		if !ok || !regexp.MustCompile(`^CHANNELS_[A-Z_]+$`).MatchString(name) {
			continue
		}
		checkEnvName(t, name, flags)
		if !commented {
			set[name] = value
		}
	}
	if len(set) == 0 {
		t.Fatal("no settings found")
	}
	if _, _, err := config.Load("serve", nil, func(k string) string { return set[k] }); err != nil {
		t.Errorf("the environment file's settings: %v", err)
	}
}

// freePort returns a TCP port free on loopback a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// proxied is the app behind a proxy under test: the assembled Channels
// app with base URL https://meet.example.org, and a test-only path that
// echoes the forwarding headers it receives.
func proxied(t *testing.T) (upstream string) {
	t.Helper()
	b := storetest.SQLite(t)
	cfg := config.Default()
	cfg.BaseURL = "https://meet.example.org"
	cfg.FSAPIPassword = "gateway secret"
	app, shutdown, err := Assemble(t.Context(), cfg, b.Store, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shutdown(context.Background()) })
	mux := http.NewServeMux()
	mux.Handle("/", app)
	mux.HandleFunc("/test-forwarding", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "host=%s xff=%s", r.Host, strings.Join(r.Header.Values("X-Forwarded-For"), "|"))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// startProxy runs cmd until the test ends and waits until it accepts
// connections on port.
func startProxy(t *testing.T, cmd *exec.Cmd, port int) {
	t.Helper()
	var logs syncBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("%s output:\n%s", cmd.Path, logs.String())
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err == nil {
			c.Close()
			return
		}
		select {
		case err := <-exited:
			t.Fatalf("%s exited: %v\n%s", cmd.Path, err, logs.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not listen on %d:\n%s", cmd.Path, port, logs.String())
		}
	}
}

// checkProxy checks what the proxy examples promise, through the proxy's
// TLS port: pages are served; Channels gets the browser's Host and an
// X-Forwarded-For of the connecting address only; /fsapi is not passed
// on, even with FreeSWITCH's credentials; the embedded hub's WebSocket at
// /verto works; http:// redirects to https://.
func checkProxy(t *testing.T, httpsPort, httpPort int) {
	t.Helper()
	dial := func(port int) func(ctx context.Context, network, _ string) (net.Conn, error) {
		return func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		}
	}
	client := &http.Client{
		Transport: &http.Transport{
			DialContext:     dial(httpsPort),
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, // the test's own certificate
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       10 * time.Second,
	}
	do := func(method, path string, header http.Header, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), method, "https://meet.example.org"+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range header {
			req.Header[k] = v
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	if code, body := do("GET", "/", nil, ""); code != 200 || !strings.Contains(body, "Channels") {
		t.Errorf("GET /: %d\n%.300s", code, body)
	}
	if code, body := do("GET", "/test-forwarding", http.Header{"X-Forwarded-For": {"203.0.113.66"}}, ""); code != 200 ||
		body != "host=meet.example.org xff=127.0.0.1" {
		t.Errorf("forwarding headers as Channels sees them: %d %q, want host=meet.example.org xff=127.0.0.1", code, body)
	}
	form := "section=directory&action=jsonrpc-authenticate&domain=meet.example.org&user=x"
	for _, path := range []string{"/fsapi", "/fsapi/", "//fsapi", "/%66sapi", "/fsapi/../fsapi"} {
		code, body := do("POST", path, http.Header{
			"Authorization": {"Basic " + basic("freeswitch", "gateway secret")},
			"Content-Type":  {"application/x-www-form-urlencoded"},
		}, form)
		if code != 404 || strings.Contains(body, "<document") {
			t.Errorf("POST %s through the proxy: %d\n%.300s", path, code, body)
		}
	}

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, "wss://meet.example.org/verto", &websocket.DialOptions{
		HTTPClient: client,
		HTTPHeader: http.Header{"Origin": {"https://meet.example.org"}},
	})
	if err != nil {
		t.Fatalf("WebSocket /verto: %v (%v)", err, resp)
	}
	defer ws.CloseNow()
	if err := ws.Write(ctx, websocket.MessageText, []byte(`{"jsonrpc":"2.0","id":1,"method":"echo","params":{"x":1}}`)); err != nil {
		t.Fatal(err)
	}
	_, reply, err := ws.Read(ctx)
	if err != nil || !strings.Contains(string(reply), `"id":1`) {
		t.Errorf("the hub's reply through the proxy: %s, %v", reply, err)
	}
	ws.Close(websocket.StatusNormalClosure, "")

	plain := &http.Client{
		Transport:     &http.Transport{DialContext: dial(httpPort)},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       10 * time.Second,
	}
	req, _ := http.NewRequestWithContext(t.Context(), "GET", "http://meet.example.org/c/x?y=1", nil)
	r, err := plain.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if loc := r.Header.Get("Location"); r.StatusCode/100 != 3 || !strings.HasPrefix(loc, "https://meet.example.org") || !strings.HasSuffix(loc, "/c/x?y=1") {
		t.Errorf("http:// answers %d Location %q, want a redirect to https://", r.StatusCode, loc)
	}
}

func basic(user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
}

// TestNginxExample runs docs/nginx.conf, its ports and certificate moved
// to the test's, in front of the app.
func TestNginxExample(t *testing.T) {
	nginx := tool(t, "nginx", "nginx-light")
	upstream := proxied(t)
	conf, err := os.ReadFile(filepath.Join(docsDir, "nginx.conf"))
	if err != nil {
		t.Fatal(err)
	}
	local := strings.ReplaceAll(string(conf), "127.0.0.1:8080", upstream)
	if local == string(conf) || strings.Contains(local, "8080") {
		t.Fatal("the test no longer knows how to move docs/nginx.conf's upstream")
	}
	httpsPort, httpPort := runNginx(t, nginx, "nginx.conf", local)
	checkProxy(t, httpsPort, httpPort)
}

// TestCaddyExample runs docs/Caddyfile, with the test's ports and Caddy's
// own local certificate authority, in front of the app.
func TestCaddyExample(t *testing.T) {
	caddy := tool(t, "caddy", "caddy")
	upstream := proxied(t)
	conf, err := os.ReadFile(filepath.Join(docsDir, "Caddyfile"))
	if err != nil {
		t.Fatal(err)
	}
	local := strings.ReplaceAll(string(conf), "127.0.0.1:8080", upstream)
	if local == string(conf) {
		t.Fatal("the test no longer knows how to move docs/Caddyfile's upstream")
	}
	validateCaddyfile(t, caddy, "Caddyfile")
	httpsPort, httpPort := runCaddy(t, caddy, local)
	checkProxy(t, httpsPort, httpPort)
}

// waitTLS waits until a TLS handshake for meet.example.org succeeds.
func waitTLS(t *testing.T, port int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := tls.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), &tls.Config{ServerName: "meet.example.org", InsecureSkipVerify: true})
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no TLS on %d: %v", port, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// writeCert writes a self-signed certificate for meet.example.org to
// dir/cert.pem and its key to dir/key.pem.
func writeCert(t *testing.T, dir string) {
	t.Helper()
	certPEM, keyPEM := selfSigned(t, "meet.example.org")
	if err := os.WriteFile(filepath.Join(dir, "cert.pem"), certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "key.pem"), keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
}

// selfSigned returns a certificate for host, signed by its own key, and
// the key, PEM-encoded.
func selfSigned(t *testing.T, host string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: host},
		DNSNames:     []string{host},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}

// runNginx runs nginx in the foreground with site (docs/file, its
// upstreams moved to the test's) as its only server, its ports moved to
// ports of its own on loopback and its certificate to one of the test's,
// after checking it with nginx -t; it waits until nginx listens and
// returns the ports. nginx stops with the test.
func runNginx(t *testing.T, nginx, file, site string) (httpsPort, httpPort int) {
	t.Helper()
	dir := t.TempDir()
	writeCert(t, dir)
	httpsPort, httpPort = freePort(t), freePort(t)
	local := strings.NewReplacer(
		"listen 443 ", fmt.Sprintf("listen 127.0.0.1:%d ", httpsPort),
		"listen [::]:443 ssl http2;", "",
		"listen 80;", fmt.Sprintf("listen 127.0.0.1:%d;", httpPort),
		"listen [::]:80;", "",
		"/etc/letsencrypt/live/meet.example.org/fullchain.pem", filepath.Join(dir, "cert.pem"),
		"/etc/letsencrypt/live/meet.example.org/privkey.pem", filepath.Join(dir, "key.pem"),
	).Replace(site)
	if strings.Contains(local, "listen 443") || strings.Contains(local, "listen 80;") || strings.Contains(local, "letsencrypt/live/meet") {
		t.Fatalf("the test no longer knows how to move docs/%s's ports and paths", file)
	}
	main := fmt.Sprintf(`daemon off;
master_process off;
pid %[1]s/nginx.pid;
error_log stderr;
events {}
http {
    access_log off;
    client_body_temp_path %[1]s/tmp;
    proxy_temp_path %[1]s/tmp;
    fastcgi_temp_path %[1]s/tmp;
    uwsgi_temp_path %[1]s/tmp;
    scgi_temp_path %[1]s/tmp;
    include %[1]s/channels.conf;
}
`, dir)
	for name, data := range map[string]string{"channels.conf": local, "nginx.conf": main} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.CommandContext(t.Context(), nginx, "-t", "-q", "-p", dir, "-c", filepath.Join(dir, "nginx.conf")).CombinedOutput(); err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
	startProxy(t, exec.CommandContext(t.Context(), nginx, "-p", dir, "-c", filepath.Join(dir, "nginx.conf")), httpsPort)
	return httpsPort, httpPort
}

// runCaddy runs caddy with sites (a Caddyfile's sites, their upstreams
// moved to the test's) after global options of the test's: no admin
// endpoint, ports of its own on loopback, a local certificate authority
// instead of Let's Encrypt, state in a directory of the test's. It checks
// the whole with caddy validate first, waits until Caddy serves TLS, and
// returns the ports; Caddy stops with the test.
func runCaddy(t *testing.T, caddy, sites string) (httpsPort, httpPort int) {
	t.Helper()
	dir := t.TempDir()
	httpsPort, httpPort = freePort(t), freePort(t)
	local := fmt.Sprintf(`{
	admin off
	http_port %d
	https_port %d
	local_certs
	skip_install_trust
	storage file_system %s
	default_bind 127.0.0.1
	servers {
		protocols h1 h2
	}
}
`, httpPort, httpsPort, filepath.Join(dir, "storage")) + sites
	path := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(path, []byte(local), 0o644); err != nil {
		t.Fatal(err)
	}
	caddyValidate(t, caddy, path, dir)
	run := exec.CommandContext(t.Context(), caddy, "run", "--adapter", "caddyfile", "--config", path)
	run.Env = caddyEnv(dir)
	startProxy(t, run, httpsPort)
	waitTLS(t, httpsPort) // Caddy listens before its local certificate is issued
	return httpsPort, httpPort
}

// validateCaddyfile checks a Caddyfile of docs/ as shipped, unchanged.
func validateCaddyfile(t *testing.T, caddy, file string) {
	t.Helper()
	caddyValidate(t, caddy, filepath.Join(docsDir, file), t.TempDir())
}

// caddyValidate runs caddy validate on the Caddyfile at path, with its
// home in dir.
func caddyValidate(t *testing.T, caddy, path, dir string) {
	t.Helper()
	validate := exec.CommandContext(t.Context(), caddy, "validate", "--adapter", "caddyfile", "--config", path)
	validate.Env = caddyEnv(dir)
	if out, err := validate.CombinedOutput(); err != nil {
		t.Fatalf("caddy validate %s: %v\n%s", path, err, out)
	}
}

// caddyEnv is the environment for caddy with its home, data and
// configuration in dir, not the user's.
func caddyEnv(dir string) []string {
	return append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
}
