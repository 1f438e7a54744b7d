package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"channels/internal/freeswitch"
)

func freeswitchSetup(fs *flag.FlagSet) func(context.Context, call) error {
	out := fs.String("out", "freeswitch", "`DIR` to write the configuration into")
	fsapiURL := fs.String("fsapi-url", "", "`URL` of /fsapi as FreeSWITCH reaches it; default: http://LISTEN/fsapi")
	return func(ctx context.Context, c call) error { return freeswitchConfig(ctx, c, *out, *fsapiURL) }
}

// freeswitchConfig writes the FreeSWITCH configuration pack with this
// deployment's values filled in.
func freeswitchConfig(_ context.Context, c call, out, fsapiURL string) error {
	if err := wantArgs(c.args, 0, ""); err != nil {
		return err
	}
	if c.cfg.FSAPIPassword == "" {
		return errors.New("freeswitch-config: set CHANNELS_FSAPI_PASSWORD (or -fsapi-password) first: without it /fsapi refuses FreeSWITCH")
	}
	// The same mapping of the configuration as everywhere else (log level
	// names, /fsapi URL, domain); only the URL can be overridden here.
	p := freeswitch.FromConfig(c.cfg)
	if fsapiURL != "" {
		p.FSAPIURL = fsapiURL
	}
	if err := freeswitch.Write(out, p); err != nil {
		return fmt.Errorf("freeswitch-config: %w", err)
	}
	fmt.Fprintf(c.env.Stdout, "Wrote the FreeSWITCH configuration to %s (it calls %s).\n", out, p.FSAPIURL)
	return nil
}
