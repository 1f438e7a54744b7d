package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"

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
	// The same mapping of the configuration as everywhere else (log level
	// names, /fsapi URL, domain); only the URL can be overridden here.
	p := freeswitch.FromConfig(cfg)
	if fsapiURL != "" {
		p.FSAPIURL = fsapiURL
	}
	if err := freeswitch.Write(out, p); err != nil {
		return fmt.Errorf("freeswitch-config: %w", err)
	}
	fmt.Fprintf(env.Stdout, "Wrote the FreeSWITCH configuration to %s (it calls %s).\n", out, p.FSAPIURL)
	return nil
}
