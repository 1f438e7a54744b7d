// Command floor is the bare net/http server scripts/bench-fsapi measures
// /fsapi against in the same run: it answers every request with a fixed
// document (the real lookup's answer, read from a file) and the headers
// /fsapi sends, after reading the request body — what any Go HTTP
// endpoint does at the least. With -served it runs under the server
// settings of `channels serve` (its timeouts, header limit and connection
// limiter; see internal/cli/serve.go), which tells how much of a gap is
// the handler's and how much the hardened server's.
//
//	go run ./scripts/floor -listen 127.0.0.1:18478 -body answer.xml
package main

import (
	"flag"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"time"

	"channels/internal/connlimit"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:18478", "address to listen on")
	file := flag.String("body", "", "file holding the answer")
	served := flag.Bool("served", false, "run under the server settings of channels serve")
	flag.Parse()
	body, err := os.ReadFile(*file)
	if err != nil {
		log.Fatal(err)
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		hd := w.Header()
		hd.Set("Content-Type", "text/xml")
		hd.Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(body)
	})
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	if *served { // as internal/cli/serve.go's defaultHTTPLimits and newHTTPServer
		srv.ReadHeaderTimeout, srv.ReadTimeout = 10*time.Second, 30*time.Second
		srv.WriteTimeout, srv.IdleTimeout = 60*time.Second, 2*time.Minute
		srv.MaxHeaderBytes = 64 << 10
		ln = connlimit.New(ln, connlimit.Options{MaxPerAddr: connlimit.DefaultMaxPerAddr, MaxTotal: connlimit.DefaultMaxTotal()})
	}
	log.Fatal(srv.Serve(ln))
}
