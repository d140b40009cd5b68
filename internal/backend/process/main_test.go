package process

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"shoal/internal/backend"
)

// TestMain doubles as the replica program (and as a process that hosts a Backend) so
// the tests need no prebuilt binaries: the backend under test runs this same test
// binary with SHOAL_TEST_REPLICA=1 in the environment.
func TestMain(m *testing.M) {
	switch {
	case os.Getenv("SHOAL_TEST_REPLICA") == "1":
		os.Exit(runReplica())
	case os.Getenv("SHOAL_TEST_HOST") == "1":
		os.Exit(runHost())
	}
	os.Exit(m.Run())
}

// hangingSupervisor stands for a supervisor that never answers (stopped, or stuck in a
// package initialiser) when SHOAL_TEST_SUPERVISOR_HANG=1 is in its environment, which
// is the test's own. Package variables are initialised before any init function runs,
// so this comes before supervisor.go's init hands the process to supervise.
var _ = hangingSupervisor()

func hangingSupervisor() bool {
	if len(os.Args) == 3 && os.Args[0] == supervisorArg0 && os.Getenv("SHOAL_TEST_SUPERVISOR_HANG") == "1" {
		time.Sleep(time.Hour)
	}
	return false
}

// Replica modes, selected with SHOAL_TEST_MODE. SHOAL_TEST_DELAY_MS parametrises some.
const (
	modeNormal        = "normal"         // serve at once; exit 0 on SIGTERM
	modeSlowStart     = "slow-start"     // listen only after the delay
	modeCrashAfter    = "crash-after"    // serve, then print 15 lines and exit 3 after the delay
	modeExitAtOnce    = "exit-at-once"   // print 15 lines and exit 3
	modeIgnoreSIGTERM = "ignore-sigterm" // serve; log SIGTERM and carry on
	modeFailHealth    = "fail-health"    // /health answers 200 until the delay has passed, then 500
	modeLotsOfLogs    = "lots-of-logs"   // print SHOAL_TEST_LOG_BYTES of lines, then serve
	modeSpawnChild    = "spawn-child"    // start a child in the same group (pid to SHOAL_TEST_CHILD_FILE); exit 4 after the delay if set
	modeIgnoredChild  = "ignored-child"  // spawn-child, with a child that ignores SIGTERM
	modeDoubleFork    = "double-fork"    // spawn-child, through a middle process that exits: the child is reparented
	modeSleep         = "sleep"          // do nothing, forever (the spawned child); SHOAL_TEST_IGNORE_TERM=1 ignores SIGTERM
	modeForkAndExit   = "fork-and-exit"  // start a sleeping child (pid to SHOAL_TEST_CHILD_FILE) and exit (the middle process)
)

func runReplica() int {
	mode := os.Getenv("SHOAL_TEST_MODE")
	delayMS, _ := strconv.Atoi(os.Getenv("SHOAL_TEST_DELAY_MS"))
	delay := time.Duration(delayMS) * time.Millisecond
	if f := os.Getenv("SHOAL_TEST_STARTS"); f != "" {
		fh, err := os.OpenFile(f, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err == nil {
			fmt.Fprintln(fh, time.Now().UnixNano())
			fh.Close()
		}
	}
	printLines := func() {
		for i := 1; i <= 15; i++ {
			// Alternate streams: both go to the same log, in order.
			w := os.Stdout
			if i%2 == 0 {
				w = os.Stderr
			}
			fmt.Fprintf(w, "log line %d\n", i)
		}
	}

	switch mode {
	case modeExitAtOnce:
		printLines()
		return 3
	case modeSleep:
		if os.Getenv("SHOAL_TEST_IGNORE_TERM") == "1" {
			signal.Ignore(syscall.SIGTERM)
		}
		select {}
	case modeForkAndExit:
		if _, err := spawnChild(modeSleep); err != nil {
			fmt.Println("spawn:", err)
			return 1
		}
		return 0
	case modeSlowStart:
		time.Sleep(delay)
	case modeLotsOfLogs:
		n, _ := strconv.Atoi(os.Getenv("SHOAL_TEST_LOG_BYTES"))
		line := strings.Repeat("x", 99) + "\n"
		for i := 0; i < n; i += len(line) {
			os.Stdout.WriteString(line)
		}
		fmt.Println("done logging")
	case modeCrashAfter:
		go func() {
			time.Sleep(delay)
			printLines()
			os.Exit(3)
		}()
	case modeSpawnChild, modeIgnoredChild, modeDoubleFork:
		var err error
		switch mode {
		case modeSpawnChild:
			_, err = spawnChild(modeSleep)
		case modeIgnoredChild:
			_, err = spawnChild(modeSleep, "SHOAL_TEST_IGNORE_TERM=1")
		case modeDoubleFork:
			var middle *exec.Cmd
			if middle, err = spawnChild(modeForkAndExit); err == nil {
				err = middle.Wait()
			}
		}
		if err != nil {
			fmt.Println("spawn:", err)
			return 1
		}
		if delay > 0 {
			go func() {
				time.Sleep(delay)
				os.Exit(4)
			}()
		}
	}

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM)
	go func() {
		for range sigs {
			if mode == modeIgnoreSIGTERM {
				fmt.Println("got SIGTERM, ignoring it")
				continue
			}
			fmt.Println("got SIGTERM")
			os.Exit(0)
		}
	}()

	started := time.Now()
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
		if mode == modeFailHealth && time.Since(started) > delay {
			http.Error(w, "sick", http.StatusInternalServerError)
		}
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, os.Getenv("SHOAL_REPLICA_ID"))
	})
	mux.HandleFunc("/env", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, os.Getenv(r.URL.Query().Get("name")))
	})
	mux.HandleFunc("/args", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, strings.Join(os.Args[1:], " "))
	})
	mux.HandleFunc("/cwd", func(w http.ResponseWriter, r *http.Request) {
		wd, _ := os.Getwd()
		fmt.Fprint(w, wd)
	})
	l, err := net.Listen("tcp", "127.0.0.1:"+os.Getenv("PORT"))
	if err != nil {
		fmt.Println("listen:", err)
		return 1
	}
	fmt.Println("serving on", l.Addr())
	_ = http.Serve(l, mux)
	return 1
}

// spawnChild starts this binary in mode as a child in the caller's process group. A
// sleeping child writes its pid to SHOAL_TEST_CHILD_FILE.
func spawnChild(mode string, env ...string) (*exec.Cmd, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	child := exec.Command(exe)
	child.Env = append(os.Environ(), append([]string{"SHOAL_TEST_MODE=" + mode, "SHOAL_TEST_STARTS="}, env...)...)
	if err := child.Start(); err != nil {
		return nil, err
	}
	if mode == modeSleep {
		err = os.WriteFile(os.Getenv("SHOAL_TEST_CHILD_FILE"), []byte(strconv.Itoa(child.Process.Pid)), 0o600)
	}
	return child, err
}

// runHost runs a Backend with one replica in SHOAL_TEST_HOST_MODE, prints the
// replica's pid and waits to be killed: the parent-death tests kill it and check the
// replica and its children die with it.
func runHost() int {
	b := New(Options{LogDir: os.Getenv("SHOAL_TEST_LOGDIR")})
	spec := replicaSpec("host", 1, os.Getenv("SHOAL_TEST_HOST_MODE"), map[string]string{
		"SHOAL_TEST_CHILD_FILE": os.Getenv("SHOAL_TEST_CHILD_FILE"),
	})
	if err := b.Apply(spec); err != nil {
		fmt.Println("apply:", err)
		return 1
	}
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		for _, s := range b.Observe() {
			for _, r := range s.Replicas {
				if r.State == backend.Running {
					fmt.Printf("pid %d\n", r.PID)
					select {}
				}
			}
		}
	}
	fmt.Println("replica never became RUNNING")
	return 1
}

// replicaSpec is a deployment of this test binary in the given mode.
func replicaSpec(name string, replicas int, mode string, env map[string]string) backend.Spec {
	exe, err := os.Executable()
	if err != nil {
		panic(err)
	}
	e := map[string]string{
		"SHOAL_TEST_REPLICA": "1",
		"SHOAL_TEST_MODE":    mode,
		"GOMAXPROCS":         "1",
	}
	for k, v := range env {
		e[k] = v
	}
	return backend.Spec{
		Key:                 backend.Key{App: "app", Deployment: name},
		Version:             "v1",
		Replicas:            replicas,
		Command:             []string{exe, "replica", "--port=${PORT}"},
		Env:                 e,
		HealthCheckPath:     "/health",
		HealthCheckPeriod:   100 * time.Millisecond,
		HealthCheckTimeout:  10 * time.Second,
		DrainPollInterval:   20 * time.Millisecond,
		GracefulStopTimeout: 5 * time.Second,
		MaxOngoingRequests:  5,
	}
}
