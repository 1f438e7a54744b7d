package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"

	"channels/internal/store"
	"channels/internal/web"
)

// channelCmd: channel add [--private] [--owner NAME] TOPIC | channel list |
// channel remove ID.
func channelCmd(ctx context.Context, args []string, env Env) error {
	if len(args) == 0 {
		return usagef("usage: channels channel add|list|remove …")
	}
	sub, args := args[0], args[1:]
	var private bool
	var owner string
	var extra func(*flag.FlagSet)
	if sub == "add" {
		extra = func(fs *flag.FlagSet) {
			fs.BoolVar(&private, "private", false, "do not list the channel on the front page")
			fs.StringVar(&owner, "owner", "", "name of the user who manages the channel")
		}
	}
	cfg, pos, err := loadConfig("channels channel "+sub, args, env, extra)
	if err != nil {
		return err
	}
	base := strings.TrimSuffix(cfg.BaseURL, "/")
	switch sub {
	case "add":
		if len(pos) == 0 {
			return usagef("usage: channels channel add [--private] [--owner NAME] TOPIC")
		}
		topic, err := web.CheckTopic(strings.Join(pos, " "))
		if err != nil {
			return usagef("%v", err)
		}
		st, err := openStore(ctx, cfg)
		if err != nil {
			return err
		}
		defer st.Close()
		var ownerID int64
		if owner != "" {
			u, err := st.UserByName(ctx, owner)
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("no user %q", owner)
			} else if err != nil {
				return fmt.Errorf("look up user %q: %w", owner, err)
			}
			ownerID = u.ID
		}
		ch, err := st.CreateChannel(ctx, topic, !private, ownerID)
		if err != nil {
			return fmt.Errorf("add channel: %w", err)
		}
		fmt.Fprintf(env.Stdout, "%s\t%s/c/%s\n", ch.ID, base, ch.ID)
		return nil

	case "list":
		if err := wantArgs("channel list", pos, 0, ""); err != nil {
			return err
		}
		st, err := openStore(ctx, cfg)
		if err != nil {
			return err
		}
		defer st.Close()
		chans, err := st.Channels(ctx)
		if err != nil {
			return fmt.Errorf("list channels: %w", err)
		}
		return writeTable(env.Stdout, "ID\tPUBLIC\tCREATED\tTOPIC", chans, func(c store.Channel) string {
			return fmt.Sprintf("%s\t%v\t%s\t%s", c.ID, c.Public, listTime(c.Created), c.Topic)
		})

	case "remove":
		if err := wantArgs("channel remove", pos, 1, "ID"); err != nil {
			return err
		}
		id := pos[0]
		if !web.ValidChannelID(id) {
			return usagef("%q is not a channel id (a lower-case UUID)", id)
		}
		st, err := openStore(ctx, cfg)
		if err != nil {
			return err
		}
		defer st.Close()
		if err := st.DeleteChannel(ctx, id); errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("no channel %s", id)
		} else if err != nil {
			return fmt.Errorf("remove channel %s: %w", id, err)
		}
		fmt.Fprintf(env.Stdout, "Removed channel %s.\n", id)
		return nil
	}
	return usagef("unknown command \"channel %s\"; want add, list or remove", sub)
}
