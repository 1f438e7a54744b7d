// Command benchserver serves /fsapi (the directory, report and verto.conf
// handlers over a real store) for load tests with wrk; see bench.sh beside
// it. It seeds a channel with -clients clients and prints the id of the
// first on standard output, then serves until interrupted.
//
//	go run ./internal/fsapi/benchserver -db /tmp/bench.db -listen 127.0.0.1:18080
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"runtime/pprof"
	"time"

	"channels/internal/directory"
	"channels/internal/fsapi"
	"channels/internal/store"
	"channels/internal/vertoconf"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "benchserver:", err)
		os.Exit(1)
	}
}

func run() error {
	db := flag.String("db", "", "SQLite file or postgres:// URL (required)")
	listen := flag.String("listen", "127.0.0.1:18080", "address to serve on")
	clients := flag.Int("clients", 1000, "clients to seed")
	cacheTTL := flag.Duration("cache-ttl", 0, "directory cache TTL (0: default, negative: off)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile to this file")
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if *db == "" {
		return fmt.Errorf("-db is required")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	st, err := store.Open(ctx, *db)
	if err != nil {
		return err
	}
	defer st.Close()
	ch, err := st.CreateChannel(ctx, "bench", false, 0)
	if err != nil {
		return err
	}
	var first store.Client
	for i := range *clients {
		c, err := st.CreateClient(ctx, ch.ID)
		if err != nil {
			return err
		}
		if i == 0 {
			first = c
		}
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	reg := fsapi.NewRegistry(logger)
	if err := directory.Register(reg, directory.Options{Store: st, Domain: "channels.test", Logger: logger, CacheTTL: *cacheTTL}); err != nil {
		return err
	}
	if err := vertoconf.Register(reg, vertoconf.Options{Bind: "127.0.0.1:8181", Domain: "channels.test"}); err != nil {
		return err
	}
	h := fsapi.NewHandler(reg, fsapi.Options{User: "fsuser", Password: "fspass", Logger: logger})
	mux := http.NewServeMux()
	mux.Handle("/fsapi", h)
	srv := &http.Server{Addr: *listen, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	fmt.Println(first.ID)
	if err := srv.ListenAndServe(); err != http.ErrServerClosed {
		return err
	}
	return nil
}
