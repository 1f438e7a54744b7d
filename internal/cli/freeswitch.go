package cli

import (
	"context"
	"errors"
	"flag"
)

// freeswitchConfig writes the FreeSWITCH configuration pack with this
// deployment's values.
//
// TODO(lead): wire internal/freeswitch's writer here once it exists; the
// package is still empty. Until then the command refuses clearly.
func freeswitchConfig(_ context.Context, args []string, env Env) error {
	var out string
	_, pos, err := loadConfig("channels freeswitch-config", args, env, func(fs *flag.FlagSet) {
		fs.StringVar(&out, "out", "freeswitch", "directory to write the configuration into")
	})
	if err != nil {
		return err
	}
	if err := wantArgs("freeswitch-config", pos, 0, "[--out DIR]"); err != nil {
		return err
	}
	return errors.New("freeswitch-config: not available yet (internal/freeswitch is not wired in this build)")
}
