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

func channelAddSetup(fs *flag.FlagSet) func(context.Context, call) error {
	private := fs.Bool("private", false, "do not list the channel on the front page")
	owner := fs.String("owner", "", "`NAME` of the user who manages the channel")
	return func(ctx context.Context, c call) error { return channelAdd(ctx, c, *private, *owner) }
}

// channelAdd adds a channel whose topic is the rest of the command line.
func channelAdd(ctx context.Context, c call, private bool, owner string) error {
	if len(c.args) == 0 {
		return usagef("missing TOPIC")
	}
	topic, err := web.CheckTopic(strings.Join(c.args, " "))
	if err != nil {
		return usagef("%v", err)
	}
	st, err := openStore(ctx, c.cfg)
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
	fmt.Fprintf(c.env.Stdout, "%s\t%s/c/%s\n", ch.ID, strings.TrimSuffix(c.cfg.BaseURL, "/"), ch.ID)
	return nil
}

func channelList(ctx context.Context, c call, st *store.Store) error {
	chans, err := st.Channels(ctx)
	if err != nil {
		return fmt.Errorf("list channels: %w", err)
	}
	return writeTable(c.env.Stdout, "ID\tPUBLIC\tCREATED\tTOPIC", chans, func(c store.Channel) string {
		return fmt.Sprintf("%s\t%v\t%s\t%s", c.ID, c.Public, listTime(c.Created), c.Topic)
	})
}

func channelRemove(ctx context.Context, c call) error {
	if err := wantArgs(c.args, 1, "ID"); err != nil {
		return err
	}
	id := c.args[0]
	if !store.ValidID(id) {
		return usagef("%q is not a channel id (a lower-case UUID)", id)
	}
	st, err := openStore(ctx, c.cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.DeleteChannel(ctx, id); errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no channel %s", id)
	} else if err != nil {
		return fmt.Errorf("remove channel %s: %w", id, err)
	}
	fmt.Fprintf(c.env.Stdout, "Removed channel %s.\n", id)
	return nil
}
