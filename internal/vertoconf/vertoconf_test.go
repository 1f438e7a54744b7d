package vertoconf

import (
	"bytes"
	"cmp"
	"context"
	"encoding/xml"
	"flag"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"channels/internal/config"
	"channels/internal/fixtures"
	"channels/internal/fsapi"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func lookup(name string) url.Values {
	return url.Values{"section": {"configuration"}, "tag_name": {"configuration"}, "key_name": {"name"},
		"key_value": {name}, "hostname": {fixtures.Hostname}}
}

func respond(t *testing.T, opts Options, form url.Values) []byte {
	t.Helper()
	reg := fsapi.NewRegistry(nil)
	if err := Register(reg, opts); err != nil {
		t.Fatal(err)
	}
	return reg.Respond(context.Background(), form)
}

// TestRecorded compares with the answer FreeSWITCH accepted in the
// recording, byte for byte.
func TestRecorded(t *testing.T) {
	n := 0
	for _, r := range fixtures.CurlRequests(t) {
		if r.Form["key_value"] != "verto.conf" {
			continue
		}
		n++
		got := respond(t, Options{Bind: fixtures.Bind, Domain: fixtures.Domain}, r.Values())
		if string(got) != r.Response {
			t.Errorf("got\n%s\nrecorded\n%s", got, r.Response)
		}
	}
	if n == 0 {
		t.Fatal("no verto.conf lookup in the recording")
	}
}

func TestGolden(t *testing.T) {
	tests := []struct {
		name string
		opts Options
	}{
		{"plain", Options{Bind: "127.0.0.1:8081", Domain: "example.org"}},
		{"tls", Options{Bind: "0.0.0.0:8082", Domain: "example.org", TLSCert: "/etc/freeswitch/tls/wss.pem"}},
		{"placeholder", Options{Bind: "127.0.0.1:8081", Domain: "example.org", Placeholder: PlaceholderCert}},
		{"tls-over-placeholder", Options{Bind: "0.0.0.0:8082", Domain: "example.org", TLSCert: "/etc/freeswitch/tls/wss.pem", Placeholder: PlaceholderCert}},
		{"hostile", Options{Bind: `"/><param name="blind-reg" value="true`, Domain: "a&b<c>", TLSCert: "x'\x00\xff"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := respond(t, tt.opts, lookup("verto.conf"))
			golden := filepath.Join("testdata", tt.name+".xml")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("got\n%s\nwant\n%s", got, want)
			}
			p := parseProfile(t, got)
			if p["bind-local"] != tt.opts.Bind && tt.name != "hostile" {
				t.Errorf("bind-local %q", p["bind-local"])
			}
			if p["userauth"] != "true" || p["blind-reg"] != "false" {
				t.Errorf("params %v", p)
			}
			// The certificate when there is one, else the placeholder;
			// only a certificate makes the listener secure.
			wantCert := cmp.Or(tt.opts.TLSCert, tt.opts.Placeholder)
			if tt.name != "hostile" && p["secure-combined"] != wantCert {
				t.Errorf("secure-combined %q, want %q", p["secure-combined"], wantCert)
			}
			if secure := bytes.Contains(got, []byte(`secure="true"`)); secure != (tt.opts.TLSCert != "") {
				t.Errorf("secure listener %v for cert %q", secure, tt.opts.TLSCert)
			}
		})
	}
}

// parseProfile reads the profile's params the way mod_verto does; a
// hostile value must not add or change any param.
func parseProfile(t *testing.T, doc []byte) map[string]string {
	t.Helper()
	var d struct {
		Params []struct {
			Name  string `xml:"name,attr"`
			Value string `xml:"value,attr"`
		} `xml:"section>configuration>profiles>profile>param"`
	}
	if err := xml.Unmarshal(doc, &d); err != nil {
		t.Fatalf("%v\n%s", err, doc)
	}
	out := map[string]string{}
	for _, p := range d.Params {
		if _, dup := out[p.Name]; dup {
			t.Errorf("param %s twice", p.Name)
		}
		out[p.Name] = p.Value
	}
	return out
}

func TestOtherNamesNotFound(t *testing.T) {
	opts := Options{Bind: "127.0.0.1:8081", Domain: "example.org"}
	for _, name := range []string{"post_load_modules.conf", "acl.conf", "event_socket.conf", "post_load_switch.conf", "verto.conf.bak", "VERTO.CONF", ""} {
		if got := respond(t, opts, lookup(name)); !bytes.Equal(got, fsapi.NotFound()) {
			t.Errorf("%q: got %s", name, got)
		}
	}
	dir := lookup("verto.conf")
	dir.Set("section", "directory")
	if got := respond(t, opts, dir); !bytes.Equal(got, fsapi.NotFound()) {
		t.Errorf("directory section: got %s", got)
	}
}

func TestFromConfig(t *testing.T) {
	c := config.Default()
	c.BaseURL = "https://meet.example.org"
	c.VertoTLSCert = "/x.pem"
	got := FromConfig(c)
	want := Options{Bind: "127.0.0.1:8081", Domain: "meet.example.org", TLSCert: "/x.pem"}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	c.VertoTLSCert = ""
	if got := FromConfig(c); got.Placeholder != PlaceholderCert {
		t.Errorf("without a certificate: placeholder %q, want the pack's %q", got.Placeholder, PlaceholderCert)
	}
	if err := Register(fsapi.NewRegistry(nil), Options{Domain: "d"}); err == nil {
		t.Error("no bind address accepted")
	}
	if err := Register(fsapi.NewRegistry(nil), Options{Bind: "b"}); err == nil {
		t.Error("no domain accepted")
	}
}
