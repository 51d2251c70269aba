// Command ferretdb serves the MongoDB wire protocol on top of PostgreSQL for local
// development and tests. PostgreSQL rather than SQLite because FerretDB v1 pushes
// equality filters down into PostgreSQL's SQL, while on SQLite it decodes every
// document of a collection for any filter not on _id alone (25 times slower at 5,000
// tasks, measured). FerretDB is embedded rather than installed with
// `go install` because the released module lacks its version file (FerretDB
// issue #2982); embedding also keeps telemetry off. FerretDB itself listens on a
// Unix socket in the state directory; clients connect to the TCP address through the
// proxy of serialize.go, which serializes the writes to each document.
package main

import (
	"context"
	"flag"
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof" // served only with -pprof
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:27017", "TCP address to serve on")
	dataDir := flag.String("data-dir", "", "directory for FerretDB's own Unix socket")
	pgURL := flag.String("postgresql-url", "", "the PostgreSQL database to store in (required)")
	key := flag.String("key", "task_id", "the unique field by which writes to different documents may run at once")
	pprofAddr := flag.String("pprof", "", "serve Go's profiles (/debug/pprof/) on this address, e.g. 127.0.0.1:6060; off when empty")
	flag.Parse()

	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if *dataDir == "" || *pgURL == "" {
		logger.Error("-data-dir and -postgresql-url are required")
		os.Exit(2)
	}
	if err := os.MkdirAll(*dataDir, 0o755); err != nil {
		logger.Error("cannot create data directory", "error", err)
		os.Exit(1)
	}

	socket := filepath.Join(*dataDir, "ferretdb.sock")
	_ = os.Remove(socket)
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:      ferretdb.ListenerConfig{Unix: socket},
		Handler:       "postgresql",
		PostgreSQLURL: *pgURL,
		Logger:        logger,
	})
	if err != nil {
		logger.Error("cannot start FerretDB", "error", err)
		os.Exit(1)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		logger.Error("cannot listen", "listen", *listen, "error", err)
		os.Exit(1)
	}
	proxy := &serializer{backend: socket, keyField: *key, logger: logger}
	go func() {
		<-ctx.Done()
		l.Close()
	}()
	go func() {
		if err := proxy.serve(l); err != nil {
			logger.Error("proxy stopped", "error", err)
			stop()
		}
	}()

	if *pprofAddr != "" {
		go func() {
			logger.Error("pprof stopped", "error", http.ListenAndServe(*pprofAddr, nil))
		}()
	}

	logger.Warn("FerretDB serving", "listen", *listen, "data_dir", *dataDir)
	if err := f.Run(ctx); err != nil {
		logger.Error("FerretDB stopped with an error", "error", err)
		os.Exit(1)
	}
}
