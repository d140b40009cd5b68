package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// DefaultAddress is where the CLI finds the control API unless --address or
// SHOAL_ADDRESS says otherwise.
const DefaultAddress = "http://127.0.0.1:8265"

// Main runs the shoal command line with args (without the program name) and returns the
// process exit code: 0 on success, 1 on an error, 2 on a usage error. SIGINT and SIGTERM
// cancel the running command (`shoal start` then shuts down gracefully).
func Main(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// After the first signal, the default behaviour comes back: a second Ctrl-C ends a
	// graceful stop that takes too long (replicas still die with shoal).
	context.AfterFunc(ctx, stop)
	return Run(ctx, args, Env{Stdout: stdout, Stderr: stderr, Getenv: os.Getenv})
}

// Env is what a command may touch of the outside world; tests replace it.
type Env struct {
	Stdout, Stderr io.Writer
	// Getenv reads an environment variable (os.Getenv in Main).
	Getenv func(string) string
}

// Run is Main with its context and environment given, for tests.
func Run(ctx context.Context, args []string, env Env) int {
	if env.Getenv == nil {
		env.Getenv = func(string) string { return "" }
	}
	root := newRoot(&env)
	root.SetArgs(args)
	root.SetOut(env.Stdout)
	root.SetErr(env.Stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	var ex *exitCodeError
	if errors.As(err, &ex) {
		// The command has printed what went wrong already.
		return ex.code
	}
	var ue *usageError
	if errors.As(err, &ue) || isCobraUsage(err) {
		fmt.Fprintf(env.Stderr, "shoal: %v; see 'shoal --help'\n", err)
		return exitUsage
	}
	fmt.Fprintf(env.Stderr, "shoal: %v\n", err)
	return exitError
}

// globals are the flags every command shares.
type globals struct {
	env      *Env
	address  string
	stateDir string
	// cacert is a PEM file of CA certificates trusted besides the system's roots.
	cacert string
}

func newRoot(env *Env) *cobra.Command {
	g := &globals{env: env}
	root := &cobra.Command{
		Use:   "shoal",
		Short: "Serve HTTP applications as sets of replica processes, from a Ray Serve config",
		Long: `shoal serves HTTP applications as sets of replica processes. It reads Ray Serve's
config format, routes traffic through its own proxy, and lets outside systems scale a
deployment through an authenticated webhook.

Start it with 'shoal start CONFIG'; the other commands talk to a running shoal through
its control API (--address, SHOAL_ADDRESS) with the admin token from the state directory
(--state-dir, SHOAL_STATE_DIR) or SHOAL_AUTH_TOKEN.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		// Without this cobra would accept "shoal typo" quietly by printing help.
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	root.CompletionOptions.HiddenDefaultCmd = true
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err} })

	address := env.Getenv("SHOAL_ADDRESS")
	if address == "" {
		address = DefaultAddress
	}
	root.PersistentFlags().StringVar(&g.address, "address", address,
		"address of shoal's control API (env SHOAL_ADDRESS)")
	root.PersistentFlags().StringVar(&g.stateDir, "state-dir", defaultStateDir(env.Getenv),
		"shoal's state directory: store, admin token, replica logs (env SHOAL_STATE_DIR)")
	root.PersistentFlags().StringVar(&g.cacert, "cacert", env.Getenv("SHOAL_CACERT"),
		"CA certificate (PEM) to trust for an https:// address, such as the ca.crt of 'shoal start --self-signed' (env SHOAL_CACERT)")

	root.AddCommand(
		newStartCmd(g),
		newDeployCmd(g),
		newStatusCmd(g),
		newScaleCmd(g),
		newTokenCmd(g),
		newLogsCmd(g),
		newDeleteCmd(g),
		newShutdownCmd(g),
		newValidateCmd(g),
		newVersionCmd(g),
		newScalerCmd(),
	)
	return root
}

func defaultStateDir(getenv func(string) string) string {
	if d := getenv("SHOAL_STATE_DIR"); d != "" {
		return d
	}
	home := getenv("HOME")
	if home == "" {
		if h, err := os.UserHomeDir(); err == nil {
			home = h
		}
	}
	if home == "" {
		return ".shoal"
	}
	return filepath.Join(home, ".shoal")
}

// usageError marks a mistake in the command line itself (exit 2).
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return &usageError{fmt.Errorf(format, args...)} }

// exitCodeError ends a command with a code after it printed its own diagnostics
// (validate prints every config error, one per line).
type exitCodeError struct{ code int }

func (e *exitCodeError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// isCobraUsage recognizes the usage errors cobra makes itself (unknown command).
func isCobraUsage(err error) bool {
	s := err.Error()
	return strings.HasPrefix(s, "unknown command") || strings.HasPrefix(s, "unknown flag") ||
		strings.HasPrefix(s, "unknown shorthand flag")
}

// exactArgs, rangeArgs and minArgs check positional arguments, naming them in the error.
func exactArgs(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != len(names) {
			return usagef("%s takes %s, got %d argument(s)", cmd.CommandPath(), strings.Join(names, " "), len(args))
		}
		return nil
	}
}

func rangeArgs(min, max int, names string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < min || len(args) > max {
			return usagef("%s takes %s, got %d argument(s)", cmd.CommandPath(), names, len(args))
		}
		return nil
	}
}
