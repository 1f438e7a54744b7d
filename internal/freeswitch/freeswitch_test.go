package freeswitch

import (
	"bytes"
	"crypto/tls"
	"encoding/xml"
	"flag"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"channels/internal/config"
	"channels/internal/fixtures"
	"channels/internal/vertoconf"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/pack")

// testParams are the recording's settings (fixtures/README.md).
var testParams = Params{
	FSAPIURL:            "http://127.0.0.1:8080/fsapi",
	User:                fixtures.APIUser,
	Password:            fixtures.APIPassword,
	Domain:              fixtures.Domain,
	EventSocketPassword: "es-secret",
}

func TestGolden(t *testing.T) {
	files, err := Render(testParams)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, f.Name)
		golden := filepath.Join("testdata", "pack", filepath.FromSlash(f.Name))
		if *update {
			if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(golden, f.Data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(golden)
		if err != nil {
			t.Fatalf("%v (run with -update)", err)
		}
		if !bytes.Equal(f.Data, want) {
			t.Errorf("%s: got\n%s\nwant\n%s", f.Name, f.Data, want)
		}
	}
	wantNames := []string{
		"autoload_configs/console.conf.xml",
		"autoload_configs/curl.conf.xml",
		"autoload_configs/event_socket.conf.xml",
		"autoload_configs/hash.conf.xml",
		"autoload_configs/logfile.conf.xml",
		"autoload_configs/lua.conf.xml",
		"autoload_configs/modules.conf.xml",
		"autoload_configs/opus.conf.xml",
		"autoload_configs/switch.conf.xml",
		"autoload_configs/xml_curl.conf.xml",
		"freeswitch.xml",
		"scripts/relay.lua",
		"scripts/report.lua",
		"vars.xml",
	}
	if !slices.Equal(names, wantNames) {
		t.Errorf("files %q, want %q", names, wantNames)
	}
}

// element is a generic XML tree.
type element struct {
	XMLName  xml.Name
	Attrs    []xml.Attr `xml:",any,attr"`
	Children []element  `xml:",any"`
}

func (e element) attr(name string) string {
	for _, a := range e.Attrs {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

func (e element) walk(f func(element)) {
	f(e)
	for _, c := range e.Children {
		c.walk(f)
	}
}

func parseXML(t *testing.T, name string, data []byte) element {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(data))
	for {
		if _, err := d.Token(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("%s is not well-formed: %v", name, err)
		}
	}
	var root element
	if err := xml.Unmarshal(data, &root); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return root
}

// written renders the pack into a temporary directory, as Write does.
func written(t *testing.T, p Params) (string, map[string]element) {
	t.Helper()
	dir := t.TempDir()
	if err := Write(dir, p); err != nil {
		t.Fatal(err)
	}
	docs := map[string]element{}
	err := filepath.WalkDir(dir, func(name string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() || filepath.Ext(name) != ".xml" {
			return err
		}
		data, err := os.ReadFile(name)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, name)
		docs[filepath.ToSlash(rel)] = parseXML(t, rel, data)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return dir, docs
}

// TestPackReferences checks that every XML file is well-formed and that
// every file the pack refers to — pre-processor includes, Lua hooks and the
// script directory — exists in it.
func TestPackReferences(t *testing.T) {
	dir, docs := written(t, testParams)
	resolve := func(v string) string {
		return filepath.Join(dir, filepath.FromSlash(strings.ReplaceAll(v, "$${conf_dir}/", "")))
	}
	refs := 0
	for name, root := range docs {
		root.walk(func(e element) {
			switch {
			case e.XMLName.Local == "X-PRE-PROCESS" && e.attr("cmd") == "include":
				refs++
				matches, err := filepath.Glob(resolve(e.attr("data")))
				if err != nil || len(matches) == 0 {
					t.Errorf("%s includes %q, which matches nothing", name, e.attr("data"))
				}
			case e.XMLName.Local == "hook":
				refs++
				if _, err := os.Stat(resolve(e.attr("script"))); err != nil {
					t.Errorf("%s: hook script: %v", name, err)
				}
			case e.XMLName.Local == "param" && e.attr("name") == "script-directory":
				refs++
				if _, err := os.Stat(filepath.Dir(resolve(e.attr("value")))); err != nil {
					t.Errorf("%s: script directory: %v", name, err)
				}
			}
		})
	}
	if refs != 6 {
		t.Errorf("%d references, want 6 (2 includes, 3 hooks, script directory)", refs)
	}
	// Every configuration file is included by the autoload glob and names
	// itself after its file.
	for name, root := range docs {
		if !strings.HasPrefix(name, "autoload_configs/") {
			continue
		}
		if root.XMLName.Local != "configuration" || root.attr("name")+".xml" != filepath.Base(name) {
			t.Errorf("%s: root <%s name=%q>", name, root.XMLName.Local, root.attr("name"))
		}
	}
}

func TestPackContent(t *testing.T) {
	_, docs := written(t, testParams)

	var modules []string
	docs["autoload_configs/modules.conf.xml"].walk(func(e element) {
		if e.XMLName.Local == "load" {
			modules = append(modules, strings.TrimPrefix(e.attr("module"), "mod_"))
		}
	})
	want := []string{"console", "logfile", "event_socket", "commands", "dptools", "curl", "hash", "lua", "xml_curl", "verto", "rtc", "dialplan_xml", "opus"}
	if !sameSet(modules, want) {
		t.Errorf("modules %v, want %v", modules, want)
	}
	if slices.Index(modules, "xml_curl") > slices.Index(modules, "verto") {
		t.Error("mod_xml_curl must load before mod_verto, whose configuration it fetches")
	}

	params := func(doc string) map[string]element {
		out := map[string]element{}
		docs[doc].walk(func(e element) {
			if e.XMLName.Local == "param" {
				out[e.attr("name")] = e
			}
		})
		return out
	}
	curl := params("autoload_configs/xml_curl.conf.xml")
	if u := curl["gateway-url"]; u.attr("value") != testParams.FSAPIURL || u.attr("bindings") != "directory|configuration" {
		t.Errorf("gateway-url %v", u.Attrs)
	}
	if c := curl["gateway-credentials"].attr("value"); c != "fsuser:fspass" {
		t.Errorf("gateway-credentials %q", c)
	}
	if v := curl["timeout"].attr("value"); v != "3" {
		t.Errorf("timeout %q", v)
	}
	es := params("autoload_configs/event_socket.conf.xml")
	if es["listen-ip"].attr("value") != "127.0.0.1" || es["password"].attr("value") != "es-secret" {
		t.Errorf("event socket %v %v", es["listen-ip"].Attrs, es["password"].Attrs)
	}
	// The curl API carries the /fsapi password in the reports: it checks
	// certificates, and its answers are small.
	cc := params("autoload_configs/curl.conf.xml")
	if cc["validate-certs"].attr("value") != "true" || cc["max-bytes"].attr("value") == "" {
		t.Errorf("curl.conf %v %v", cc["validate-certs"].Attrs, cc["max-bytes"].Attrs)
	}
	opus := params("autoload_configs/opus.conf.xml")
	for name, want := range map[string]string{"use-vbr": "1", "keep-fec-enabled": "1", "complexity": "10"} {
		if got := opus[name].attr("value"); got != want {
			t.Errorf("opus.conf %s = %q, want %q", name, got, want)
		}
	}
	hooks := map[string]string{}
	docs["autoload_configs/lua.conf.xml"].walk(func(e element) {
		if e.XMLName.Local == "hook" {
			hooks[strings.TrimSpace(e.attr("event")+" "+e.attr("subclass"))] = filepath.Base(e.attr("script"))
		}
	})
	wantHooks := map[string]string{"MESSAGE": "relay.lua", "CUSTOM verto::login": "report.lua", "CUSTOM verto::client_disconnect": "report.lua"}
	if len(hooks) != len(wantHooks) {
		t.Errorf("hooks %v", hooks)
	}
	for k, v := range wantHooks {
		if hooks[k] != v {
			t.Errorf("hook %s → %q, want %q", k, hooks[k], v)
		}
	}
}

// moduleConfig is the configuration each module of the pack reads when it
// loads ("" for none). A module without its file logs an error at every
// start ("Could not open curl.conf", "Opening of opus.conf failed"), so
// each loaded module must be listed here and its file must be in the pack
// or, for verto.conf, served by /fsapi.
var moduleConfig = map[string]string{
	"console":      "console.conf",
	"logfile":      "logfile.conf",
	"xml_curl":     "xml_curl.conf",
	"event_socket": "event_socket.conf",
	"commands":     "",
	"dptools":      "",
	"curl":         "curl.conf",
	"hash":         "hash.conf",
	"lua":          "lua.conf",
	"dialplan_xml": "",
	"rtc":          "",
	"opus":         "opus.conf",
	"verto":        "verto.conf", // served by /fsapi (package vertoconf)
}

func TestEveryModuleHasItsConfiguration(t *testing.T) {
	_, docs := written(t, testParams)
	n := 0
	docs["autoload_configs/modules.conf.xml"].walk(func(e element) {
		if e.XMLName.Local != "load" {
			return
		}
		n++
		mod := strings.TrimPrefix(e.attr("module"), "mod_")
		conf, known := moduleConfig[mod]
		switch {
		case !known:
			t.Errorf("mod_%s loads: add the configuration it reads to moduleConfig (and the pack)", mod)
		case conf == "" || conf == "verto.conf":
		default:
			if _, ok := docs["autoload_configs/"+conf+".xml"]; !ok {
				t.Errorf("mod_%s reads %s, which the pack lacks", mod, conf)
			}
		}
	})
	if n != len(moduleConfig) {
		t.Errorf("%d modules load, moduleConfig lists %d", n, len(moduleConfig))
	}
}

// TestPlaceholderCert: Write leaves a certificate and matching key, one
// file, where verto.conf names it, readable by FreeSWITCH's group only; a
// new one each time.
func TestPlaceholderCert(t *testing.T) {
	dir, _ := written(t, testParams)
	rel, ok := strings.CutPrefix(vertoconf.PlaceholderCert, "$${conf_dir}/")
	if !ok {
		t.Fatalf("vertoconf.PlaceholderCert %q is not in the configuration directory", vertoconf.PlaceholderCert)
	}
	name := filepath.Join(dir, filepath.FromSlash(rel))
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(name); err != nil || st.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, %v; want 0640", st.Mode().Perm(), err)
	}
	// What OpenSSL does with secure-combined: the first certificate and
	// the first private key of the file, which must match.
	pair, err := tls.X509KeyPair(data, data)
	if err != nil {
		t.Fatalf("not a certificate and its key: %v\n%s", err, data)
	}
	c := pair.Leaf
	if c.IsCA || c.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature) != nil || !strings.Contains(c.Subject.CommonName, "placeholder") {
		t.Errorf("certificate %+v", c.Subject)
	}
	if time.Until(c.NotAfter) < 10*365*24*time.Hour || time.Since(c.NotBefore) < 0 {
		t.Errorf("valid %v to %v", c.NotBefore, c.NotAfter)
	}
	if err := Write(dir, testParams); err != nil {
		t.Fatal(err)
	}
	again, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(again, data) {
		t.Error("the same key pair twice")
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func TestHTTPSVerifiesCertificates(t *testing.T) {
	p := testParams
	p.FSAPIURL = "https://channels.example.org/fsapi"
	_, docs := written(t, p)
	n := 0
	docs["autoload_configs/xml_curl.conf.xml"].walk(func(e element) {
		if (e.attr("name") == "enable-cacert-check" || e.attr("name") == "enable-ssl-verifyhost") && e.attr("value") == "true" {
			n++
		}
	})
	if n != 2 {
		t.Errorf("%d certificate checks enabled, want 2", n)
	}
}

// TestHostileValues: values with XML and Lua metacharacters stay values.
func TestHostileValues(t *testing.T) {
	p := testParams
	p.User = `a"b<c>&d'`
	p.Password = "p\"w'<&>\\\n\t]]>--\x01é"
	files, err := Render(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		switch filepath.Ext(f.Name) {
		case ".xml":
			root := parseXML(t, f.Name, f.Data)
			if f.Name == "autoload_configs/xml_curl.conf.xml" {
				root.walk(func(e element) {
					if e.attr("name") == "gateway-credentials" {
						want := p.User + ":" + strings.ReplaceAll(p.Password, "\x01", "\uFFFD")
						if e.attr("value") != want {
							t.Errorf("credentials %q, want %q", e.attr("value"), want)
						}
					}
				})
			}
		case ".lua":
			if f.Name == "scripts/report.lua" {
				got := luaGlobalAfter(t, f.Data, "secret")
				if got != p.Password {
					t.Errorf("Lua reads the secret as %q, want %q", got, p.Password)
				}
			}
		}
	}
}

func TestLuaQuote(t *testing.T) {
	for _, s := range []string{"", "plain", `"`, `\`, "\n\r\t\x00", "é日本\xff", `]]--[[`, "\\065"} {
		code := []byte("secret = " + LuaQuote(s) + "\n")
		if got := luaGlobalAfter(t, code, "secret"); got != s {
			t.Errorf("LuaQuote(%q) reads back as %q", s, got)
		}
	}
}

func TestParamsValidation(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Params)
	}{
		{"no URL", func(p *Params) { p.FSAPIURL = "" }},
		{"relative URL", func(p *Params) { p.FSAPIURL = "/fsapi" }},
		{"ftp URL", func(p *Params) { p.FSAPIURL = "ftp://h/fsapi" }},
		{"credentials in URL", func(p *Params) { p.FSAPIURL = "http://u:p@h/fsapi" }},
		{"space in URL", func(p *Params) { p.FSAPIURL = "http://h/fs api" }},
		{"quote in URL", func(p *Params) { p.FSAPIURL = "http://h/fs'api" }},
		{"no user", func(p *Params) { p.User = "" }},
		{"colon in user", func(p *Params) { p.User = "a:b" }},
		{"no password", func(p *Params) { p.Password = "" }},
		{"expansion in password", func(p *Params) { p.Password = "$${x}" }},
		{"no domain", func(p *Params) { p.Domain = "" }},
		{"bad domain", func(p *Params) { p.Domain = `a"b` }},
		{"bad log level", func(p *Params) { p.LogLevel = "loud" }},
		{"bad port", func(p *Params) { p.EventSocketPort = 70000 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := testParams
			tt.edit(&p)
			if _, err := Render(p); err == nil {
				t.Error("accepted")
			}
		})
	}
}

func TestWrite(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "conf")
	p := testParams
	p.EventSocketPassword = ""
	if err := Write(dir, p); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, "autoload_configs", "local.conf.xml")
	if err := os.WriteFile(other, []byte("<configuration name=\"local.conf\"/>"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Writing again replaces the pack's files and keeps others.
	if err := os.Chmod(filepath.Join(dir, "scripts", "report.lua"), 0o666); err != nil {
		t.Fatal(err)
	}
	if err := Write(dir, p); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(other); err != nil {
		t.Error(err)
	}
	for name, mode := range map[string]fs.FileMode{
		"freeswitch.xml":                         0o644,
		"scripts/relay.lua":                      0o644,
		"scripts/report.lua":                     0o640,
		"autoload_configs/xml_curl.conf.xml":     0o640,
		"autoload_configs/event_socket.conf.xml": 0o640,
	} {
		st, err := os.Stat(filepath.Join(dir, filepath.FromSlash(name)))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, want %v", name, st.Mode().Perm(), mode)
		}
	}
	// An empty event socket password becomes a random one.
	data, err := os.ReadFile(filepath.Join(dir, "autoload_configs", "event_socket.conf.xml"))
	if err != nil {
		t.Fatal(err)
	}
	var pw string
	parseXML(t, "event_socket", data).walk(func(e element) {
		if e.attr("name") == "password" {
			pw = e.attr("value")
		}
	})
	if len(pw) != 32 || pw == "ClueCon" {
		t.Errorf("event socket password %q", pw)
	}
	if err := Write(filepath.Join(dir, "freeswitch.xml", "x"), p); err == nil {
		t.Error("writing below a file succeeded")
	}
}

func TestTemplatesMustEscape(t *testing.T) {
	if _, err := parseTemplate("x.xml", `<a v="{{.Domain}}"/>`); err == nil {
		t.Error("unescaped XML value accepted")
	}
	if _, err := parseTemplate("x.lua", `local d = {{xml .Domain}}`); err == nil {
		t.Error("XML escaping accepted in Lua")
	}
	if _, err := parseTemplate("x.xml", `{{if .HTTPS}}{{lua .Domain}}{{end}}`); err == nil {
		t.Error("Lua quoting accepted in XML")
	}
}

func TestFromConfig(t *testing.T) {
	tests := []struct {
		listen, level string
		wantURL       string
		wantLevel     string
	}{
		{"127.0.0.1:8080", "info", "http://127.0.0.1:8080/fsapi", "info"},
		{":9000", "warn", "http://127.0.0.1:9000/fsapi", "warning"},
		{"0.0.0.0:80", "error", "http://127.0.0.1:80/fsapi", "err"},
		{"[::]:8080", "debug", "http://127.0.0.1:8080/fsapi", "debug"},
		{"[::1]:8080", "info", "http://[::1]:8080/fsapi", "info"},
		{"10.0.0.5:8080", "info", "http://10.0.0.5:8080/fsapi", "info"},
	}
	for _, tt := range tests {
		c := config.Default()
		c.Listen, c.LogLevel = tt.listen, tt.level
		c.BaseURL = "https://meet.example.org"
		c.FSAPIPassword = "pw"
		p := FromConfig(c)
		if p.FSAPIURL != tt.wantURL || p.LogLevel != tt.wantLevel || p.User != "freeswitch" || p.Password != "pw" || p.Domain != "meet.example.org" {
			t.Errorf("%s: %+v", tt.listen, p)
		}
		if _, err := Render(p); err != nil {
			t.Errorf("%s: %v", tt.listen, err)
		}
	}
}
