// Command ferretdb serves the MongoDB wire protocol for local development and tests:
// FerretDB v2, embedded, on PostgreSQL with Microsoft's DocumentDB extension, which
// stores BSON documents, serves indexes (equality, $in, ranges, compound) and applies
// each single-document update atomically under PostgreSQL's row locks, as MongoDB does.
//
// FerretDB is embedded in this main rather than built from its cmd/ferretdb because that
// needs a hand-written version file (it is not in the module zip) and, on Go >= 1.25, a
// patch; embedded, it also never reports telemetry. Authentication is off, as with a
// MongoDB started without --auth: the server listens on loopback only.
package main

import (
	"context"
	"flag"
	"log/slog"
	"net/http"
	_ "net/http/pprof" // served only with -pprof
	"os"
	"os/signal"
	"syscall"

	"github.com/FerretDB/FerretDB/v2/ferretdb"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:27017", "TCP address to serve the MongoDB protocol on")
	stateDir := flag.String("state-dir", "", "directory for FerretDB's own state (required)")
	pgURL := flag.String("postgresql-url", "", "the PostgreSQL database with DocumentDB to store in (required)")
	pprofAddr := flag.String("pprof", "", "serve Go's profiles (/debug/pprof/) on this address, e.g. 127.0.0.1:6060; off when empty")
	flag.Parse()

	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if *stateDir == "" || *pgURL == "" {
		logger.Error("-state-dir and -postgresql-url are required")
		os.Exit(2)
	}
	if err := os.MkdirAll(*stateDir, 0o755); err != nil {
		logger.Error("cannot create the state directory", "error", err)
		os.Exit(1)
	}

	telemetry := false
	f, err := ferretdb.New(&ferretdb.Config{
		PostgreSQLURL: *pgURL,
		ListenAddr:    *listen,
		StateDir:      *stateDir,
		LogLevel:      slog.LevelWarn,
		LogOutput:     os.Stderr,
		Telemetry:     &telemetry,
	})
	if err != nil {
		logger.Error("cannot start FerretDB", "error", err)
		os.Exit(1)
	}

	if *pprofAddr != "" {
		go func() {
			logger.Error("pprof stopped", "error", http.ListenAndServe(*pprofAddr, nil))
		}()
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	logger.Warn("FerretDB serving", "listen", *listen, "state_dir", *stateDir)
	f.Run(ctx)
}
