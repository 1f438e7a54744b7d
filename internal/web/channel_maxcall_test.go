package web

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"channels/internal/config"
	"channels/internal/store/storetest"
	"channels/internal/webclient"
)

// TestChannelPageMaxCall: the channel page's configuration carries the
// most people in one call as maxCall: Options.MaxCallSize
// (-max-call-size), or DefaultMaxCallSize, 6, when it is zero.
func TestChannelPageMaxCall(t *testing.T) {
	st := storetest.SQLite(t).Store
	assets, err := webclient.New()
	if err != nil {
		t.Fatal(err)
	}
	ch, err := st.CreateChannel(t.Context(), "Lobby", true, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name         string
		option, want int
	}{
		{"default", 0, 6},
		{"lowered", 3, 3},
		{"two", 2, 2},
		{"six", 6, 6},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv, err := New(Options{Config: config.Default(), Store: st, Assets: assets, MaxCallSize: tt.option})
			if err != nil {
				t.Fatal(err)
			}
			w := httptest.NewRecorder()
			srv.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/c/"+ch.ID, nil))
			if w.Code != http.StatusOK {
				t.Fatalf("status %d", w.Code)
			}
			body := w.Body.String()
			if c := parseConfig(t, body); c.MaxCall != tt.want {
				t.Errorf("maxCall %d, want %d", c.MaxCall, tt.want)
			}
			// The name the browser client reads.
			if want := `"maxCall":` + strconv.Itoa(tt.want); !strings.Contains(body, want) {
				t.Errorf("channel-config lacks %s", want)
			}
		})
	}
	if DefaultMaxCallSize != config.Default().MaxCallSize {
		t.Errorf("DefaultMaxCallSize %d, the flag's default %d", DefaultMaxCallSize, config.Default().MaxCallSize)
	}
}

// TestChannelPageMaxCallDefault: a site built from the configuration alone
// hands out the default, 6.
func TestChannelPageMaxCallDefault(t *testing.T) {
	s := newSite(t, storetest.SQLite(t).Store, nil)
	ch := s.channel("Lobby", true, 0)
	if c := s.browser().channelPage(ch.ID); c.MaxCall != 6 {
		t.Errorf("maxCall %d, want 6", c.MaxCall)
	}
}
