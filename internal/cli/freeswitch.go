package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"strconv"

	"channels/internal/config"
	"channels/internal/freeswitch"
)

// freeswitchConfig writes the FreeSWITCH configuration pack with this
// deployment's values filled in.
func freeswitchConfig(_ context.Context, args []string, env Env) error {
	var out, fsapiURL string
	cfg, pos, err := loadConfig("channels freeswitch-config", args, env, func(fs *flag.FlagSet) {
		fs.StringVar(&out, "out", "freeswitch", "directory to write the configuration into")
		fs.StringVar(&fsapiURL, "fsapi-url", "", "URL of /fsapi as FreeSWITCH reaches it; default: http://LISTEN/fsapi")
	})
	if err != nil {
		return err
	}
	if err := wantArgs("freeswitch-config", pos, 0, "[--out DIR] [--fsapi-url URL]"); err != nil {
		return err
	}
	if cfg.FSAPIPassword == "" {
		return errors.New("freeswitch-config: set CHANNELS_FSAPI_PASSWORD (or --fsapi-password) first: without it /fsapi refuses FreeSWITCH")
	}
	if fsapiURL == "" {
		fsapiURL = defaultFSAPIURL(cfg)
	}
	if err := freeswitch.Write(out, freeswitch.Params{
		FSAPIURL: fsapiURL,
		User:     cfg.FSAPIUser,
		Password: cfg.FSAPIPassword,
		Domain:   cfg.VertoDomain(),
	}); err != nil {
		return fmt.Errorf("freeswitch-config: %w", err)
	}
	fmt.Fprintf(env.Stdout, "Wrote the FreeSWITCH configuration to %s (it calls %s).\n", out, fsapiURL)
	return nil
}

// defaultFSAPIURL is /fsapi on the listen address, with a loopback host
// when the service listens on all interfaces.
func defaultFSAPIURL(cfg config.Config) string {
	host, port, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return "http://127.0.0.1:8080/fsapi"
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	if _, err := strconv.Atoi(port); err != nil {
		port = "8080"
	}
	return "http://" + net.JoinHostPort(host, port) + "/fsapi"
}
