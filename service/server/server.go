package server

import (
	"context"
	"errors"
	"fmt"

	"github.com/sassoftware/relic/v8/cmdline/shared"
	_ "github.com/sassoftware/relic/v8/cmdline/workercmd" // the "worker" command of PKCS#11 token workers
	"github.com/sassoftware/relic/v8/config"
)

// WorkerCommand is the first argument with which relic's server starts a
// PKCS#11 token worker: itself (os.Args[0]) with "worker CONFIG TOKEN".
// imaforge's main hands such a process to RunWorker before its own CLI.
const WorkerCommand = "worker"

// ErrConfig is matched by the errors of LoadServerConfig.
var ErrConfig = errors.New("invalid service configuration")

// LoadServerConfig reads a relic server configuration (relic's format:
// tokens, keys with their roles, server, clients, auditFile) and checks what
// serving needs, as relic's own serve command does: a server and a clients
// section, a listener, its TLS key and certificate. Errors name the file.
func LoadServerConfig(path string) (*config.Config, error) {
	cfg, err := config.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrConfig, path, err)
	}
	switch {
	case cfg.Server == nil:
		return nil, fmt.Errorf("%w: %s: no server section", ErrConfig, path)
	case len(cfg.Clients) == 0:
		return nil, fmt.Errorf("%w: %s: no clients section: no client could sign", ErrConfig, path)
	case cfg.Server.ListenHTTP != "":
		return nil, fmt.Errorf("%w: %s: server.listenhttp serves without TLS client authentication; imaforge serves TLS only", ErrConfig, path)
	case cfg.Server.Listen == "":
		return nil, fmt.Errorf("%w: %s: server.listen is not set", ErrConfig, path)
	case cfg.Server.KeyFile == "" || cfg.Server.CertFile == "":
		return nil, fmt.Errorf("%w: %s: server.keyfile and server.certfile (the TLS key and certificate) are required", ErrConfig, path)
	}
	return cfg, nil
}

// Serve runs relic's server with cfg (from LoadServerConfig) until ctx is
// done, then shuts it down gracefully. The ima module is registered (this
// package's init). test: check the configuration, open the tokens and
// return without serving.
func Serve(ctx context.Context, cfg *config.Config, test bool) error {
	// relic's signature audit (and the worker processes) read the
	// configuration from here.
	shared.CurrentConfig = cfg
	d, err := newDaemon(cfg, test)
	if err != nil {
		return fmt.Errorf("start relic server: %w", err)
	}
	if d == nil { // test
		return nil
	}
	return d.serve(ctx)
}

// RunWorker runs relic's PKCS#11 token worker (args: CONFIG TOKEN), as
// relic's server starts it. It returns only if the worker stops.
func RunWorker(args []string) error {
	shared.RootCmd.SetArgs(append([]string{WorkerCommand}, args...))
	return shared.RootCmd.Execute()
}
