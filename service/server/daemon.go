package server

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	stdlog "log"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"
	"github.com/rs/zerolog/log"
	"github.com/sassoftware/relic/v8/config"
	"github.com/sassoftware/relic/v8/lib/certloader"
	"github.com/sassoftware/relic/v8/server"
)

// daemon is relic's server (server.New: token workers, health checks,
// client-certificate authentication, key ACLs, the signature modules with
// ima among them) behind relic's own handler, wrapped by auditRefusals so
// that relic's own refusals reach the audit file too. relic's
// server/daemon package builds the same http.Server around the same
// handler but gives no way to wrap it; this is its listener setup (TLS
// with a requested client certificate, HTTP/2, timeouts, the metrics
// listener) without systemd socket activation.
type daemon struct {
	srv     *server.Server
	http    *http.Server
	ln      net.Listener
	metrics net.Listener
	logFile *os.File
}

func newDaemon(cfg *config.Config, test bool) (*daemon, error) {
	logFile, err := setupLogging(cfg.Server.LogLevel, cfg.Server.LogFile)
	if err != nil {
		return nil, err
	}
	d := &daemon{logFile: logFile}
	fail := func(err error) (*daemon, error) {
		d.close()
		return nil, err
	}
	cert, err := certloader.LoadX509KeyPair(cfg.Server.CertFile, cfg.Server.KeyFile)
	if err != nil {
		return fail(fmt.Errorf("server TLS key and certificate: %w", err))
	}
	if d.srv, err = server.New(cfg); err != nil {
		return fail(err)
	}
	d.http = &http.Server{
		Handler:           auditRefusals(cfg, d.srv.Handler()),
		ReadHeaderTimeout: time.Second * time.Duration(cfg.Server.ReadHeaderTimeout),
		ReadTimeout:       time.Second * time.Duration(cfg.Server.ReadTimeout),
		WriteTimeout:      time.Second * time.Duration(cfg.Server.WriteTimeout),
		IdleTimeout:       10 * time.Second,
		TLSConfig: &tls.Config{
			Certificates:           []tls.Certificate{cert.TLS()},
			SessionTicketsDisabled: true,
			// relic authenticates the certificate itself (its clients)
			ClientAuth: tls.RequestClientCert,
			MinVersion: tls.VersionTLS12,
		},
		ErrorLog: stdlog.New(log.Logger, "", 0),
	}
	if test {
		return fail(nil)
	}
	if d.ln, err = net.Listen("tcp", cfg.Server.Listen); err != nil {
		return fail(err)
	}
	if cfg.Server.ListenMetrics != "" {
		if d.metrics, err = net.Listen("tcp", cfg.Server.ListenMetrics); err != nil {
			return fail(err)
		}
	}
	return d, nil
}

// setupLogging points zerolog's global logger, which relic's handler logs
// through, at logFile as relic's daemon does: "" pretty text on stderr, "-"
// JSON on stderr, else JSON appended to the file.
func setupLogging(level, logFile string) (*os.File, error) {
	zerolog.TimeFieldFormat = "2006-01-02T15:04:05.000Z07:00"
	zerolog.DurationFieldInteger = true
	var f *os.File
	switch logFile {
	case "":
		log.Logger = log.Logger.Output(zerolog.ConsoleWriter{Out: os.Stderr, TimeFormat: "15:04:05"})
	case "-":
		log.Logger = log.Logger.Output(os.Stderr)
	default:
		var err error
		if f, err = os.OpenFile(logFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640); err != nil {
			return nil, fmt.Errorf("server.logfile: %w", err)
		}
		log.Logger = log.Logger.Output(f)
	}
	if level == "" {
		level = zerolog.InfoLevel.String()
	}
	lv, err := zerolog.ParseLevel(level)
	if err != nil {
		if f != nil {
			f.Close()
		}
		return nil, fmt.Errorf("server.loglevel: %w", err)
	}
	log.Logger = log.Logger.Level(lv)
	return f, nil
}

// serve serves until ctx is done, then shuts down gracefully (requests in
// flight finish, within 5 minutes).
func (d *daemon) serve(ctx context.Context) error {
	done := make(chan error, 2)
	go func() { done <- d.http.ServeTLS(d.ln, "", "") }()
	if d.metrics != nil {
		ms := &http.Server{Handler: promhttp.Handler(), ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second}
		go func() { log.Err(ms.Serve(d.metrics)).Msg("metrics listener stopped") }()
		defer ms.Close()
	}
	log.Info().Str("url", "https://"+d.ln.Addr().String()).Msg("listening for requests")
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		err = d.http.Shutdown(sctx)
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return errors.Join(err, d.close())
}

func (d *daemon) close() error {
	var err error
	if d.srv != nil {
		err = d.srv.Close()
	}
	if d.logFile != nil {
		log.Logger = log.Logger.Output(os.Stderr)
		err = errors.Join(err, d.logFile.Close())
	}
	return err
}

// clientFingerprint is relic's name for a client certificate: the hex
// SHA-256 of its public key (config.Config.Clients).
func clientFingerprint(der []byte) string {
	d := sha256.Sum256(der)
	return hex.EncodeToString(d[:])
}
