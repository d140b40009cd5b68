package chaos

import (
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"shoal/test/testbin"

	mrand "math/rand/v2"
)

var (
	seedFlag     = flag.Uint64("chaos.seed", 0, "seed of the fault schedule; 0 takes one from the clock (and, with no -chaos.duration, runs the three fixed seeds of make test)")
	durationFlag = flag.Duration("chaos.duration", 0, "how long faults are injected; 0 runs the short version (3 fixed seeds × 20s)")
	outFlag      = flag.String("chaos.out", "", "a directory to write samples.csv, resources.svg and summary.md to")
	clientsFlag  = flag.Int("chaos.clients", 8, "keep-alive clients sending requests through the proxy")
	binDirFlag   = flag.String("chaos.bindir", "", "run the shoal and replica binaries in this directory instead of building them from the checkout")
)

// shortSeeds and shortDuration are the short version that `make test` runs: 3 × 20 s
// of faults (about 90 s in all with startup and the final checks).
var shortSeeds = []uint64{1, 2, 3}

const shortDuration = 20 * time.Second

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	flag.Parse()
	if *binDirFlag != "" {
		bin = binaries{shoal: filepath.Join(*binDirFlag, "shoal"), replica: filepath.Join(*binDirFlag, "replica")}
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "shoal-chaos-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	b, err := testbin.Build(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 1
	}
	bin = binaries{root: b.Root, shoal: b.Shoal, replica: b.Replica}
	return m.Run()
}

func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("the chaos run takes a minute; skipped with -short")
	}
	if *seedFlag == 0 && *durationFlag == 0 {
		for _, seed := range shortSeeds {
			t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
				run(t, seed, shortDuration, "")
			})
		}
		return
	}
	seed, d := *seedFlag, *durationFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	if d == 0 {
		d = shortDuration
	}
	run(t, seed, d, *outFlag)
}

// run is one chaos run: shoal with two applications under load, faults for d, then
// the final checks. Any broken invariant fails the test with the seed and the step.
func run(t *testing.T, seed uint64, d time.Duration, out string) {
	replay := fmt.Sprintf("go test ./test/chaos -run TestChaos -v -chaos.seed=%d -chaos.duration=%v", seed, d)
	t.Logf("chaos seed %d, %v of faults (replay: %s)", seed, d, replay)
	fmt.Printf("chaos: seed %d, %v of faults\n", seed, d)

	var tag [4]byte
	_, _ = rand.Read(tag[:])
	marker := fmt.Sprintf("%d-%s", seed, hex.EncodeToString(tag[:]))
	proxyPort, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	sh, err := newShoal(t.TempDir(), proxyPort)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = sh.kill()
		// A replica left behind is reported by the checks; here it only keeps the
		// machine clean.
		for _, p := range runProcs(marker) {
			_ = killPID(p.pid)
		}
		if t.Failed() {
			t.Logf("the last lines of shoal's output:\n%s", tail(sh.out.String(), 150))
		}
	})

	apps := []*appState{
		{name: "a", prefix: "/", model: "v0", numReplicas: 2, target: 2},
		{name: "b", prefix: "/b", model: "v0", numReplicas: 1, target: 1},
	}
	dr := &driver{
		seed: seed, rng: mrand.New(mrand.NewPCG(seed, 0x5ca1e)), sh: sh, apps: apps, marker: marker, workDir: t.TempDir(),
		faults: &faultLog{}, minShoal: min(max(d/6, 5*time.Second), 3*time.Minute),
		steps: map[string]int{}, badCodes: map[int]int{}, stopped: map[int]int{},
	}
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("chaos seed %d, step %d: %s\nreplay: %s\nlast steps:\n%s",
			seed, dr.stepNo, fmt.Sprintf(format, args...), replay, dr.recent(25))
	}

	cfg := filepath.Join(t.TempDir(), "serve.json")
	if err := os.WriteFile(cfg, dr.config(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := sh.start(cfg); err != nil {
		fail("start: %v", err)
	}
	for _, a := range apps {
		if a.token, err = sh.appToken(a.name); err != nil {
			fail("token of %s: %v", a.name, err)
		}
	}
	if _, err := converge(sh, marker, apps, convergeBound, true); err != nil {
		fail("first deploy: %v", err)
	}

	started := time.Now()
	dr.lastKill = started // the first kill of shoal, too, waits minShoal
	ld := newLoad(sh.proxyURL(), apps, seed)
	smp := &sampler{sh: sh, marker: marker, started: started,
		ok: func() (int64, int64) { return ld.ok.Load(), ld.nfailures.Load() }}
	smp.start(time.Second)
	ld.start(*clientsFlag)
	dr.load = ld
	stopAll := sync.OnceFunc(func() { ld.halt(); smp.halt() })
	t.Cleanup(stopAll)

	// The faults.
	nextNote := started.Add(time.Minute)
	for deadline := started.Add(d); time.Now().Before(deadline); {
		if time.Now().After(nextNote) { // progress of a long run
			fmt.Printf("chaos: %v, step %d, %d requests served, %d failed (all accounted for so far)\n",
				time.Since(started).Round(time.Second), dr.stepNo, ld.ok.Load(), ld.nfailures.Load())
			nextNote = nextNote.Add(time.Minute)
		}
		if err := dr.step(); err != nil {
			fail("%v", err)
		}
		if pid, _ := sh.pid(); pid == 0 {
			fail("shoal exited on its own: %v", sh.current().exitErr)
		}
		if err := checkTargets(sh, apps); err != nil {
			fail("%v", err)
		}
		if err := accountAll(ld.failed(), dr.faults.all(), time.Now()); err != nil {
			fail("%v", err)
		}
		time.Sleep(100*time.Millisecond + time.Duration(dr.rng.Int64N(int64(700*time.Millisecond))))
	}
	faultsEnd := time.Now()
	dr.stepNo++
	dr.logf("faults stop")

	// The end: statuses converge with the load still running, then nothing is lost.
	dr.contAll()
	took, err := converge(sh, marker, apps, convergeBound, true)
	if err != nil {
		fail("after the faults stopped: %v", err)
	}
	dr.logf("converged %v after the faults stopped", took.Round(time.Millisecond))
	time.Sleep(time.Second) // a last second of traffic on the settled system
	stopAll()
	if err := accountAll(ld.failed(), dr.faults.all(), time.Now()); err != nil {
		fail("%v", err)
	}
	for _, a := range apps {
		if v, _ := ld.okByApp.Load(a.name); v.(interface{ Load() int64 }).Load() == 0 {
			fail("no request to application %s was served", a.name)
		}
	}
	notes, growthErr := checkGrowth(smp.all())
	if growthErr != nil {
		fail("%v", growthErr)
	}
	if err := sh.stop(30 * time.Second); err != nil {
		fail("graceful stop at the end: %v", err)
	}
	if err := checkNoOrphans(marker, 10*time.Second); err != nil {
		fail("after the graceful stop: %v", err)
	}

	rep := report{
		seed: seed, duration: d, faultsEnd: faultsEnd.Sub(started), converged: took, steps: dr.stepNo,
		stepKinds: dr.steps, faults: dr.faults.all(), failures: ld.failed(), badCodes: dr.badCodes,
		ok: ld.ok.Load(), sentZero: ld.sentZero.Load(), served0: ld.served0.Load(),
		samples: smp.all(), notes: notes, clients: *clientsFlag, replay: replay,
	}
	for _, a := range apps {
		v, _ := ld.okByApp.Load(a.name)
		rep.okByApp = append(rep.okByApp, fmt.Sprintf("%s %d", a.name, v.(interface{ Load() int64 }).Load()))
	}
	t.Log("\n" + rep.markdown())
	if out != "" {
		if err := rep.write(out); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", out)
	}
}

// sampler reads shoal's memory, file descriptors and goroutines every interval.
type sampler struct {
	sh      *shoal
	marker  string
	started time.Time
	ok      func() (int64, int64)

	stop chan struct{}
	wg   sync.WaitGroup
	mu   sync.Mutex // guards samples
	rows []sample
}

func (s *sampler) start(every time.Duration) {
	s.stop = make(chan struct{})
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-tick.C:
			}
			pid, inst := s.sh.pid()
			if pid == 0 {
				continue
			}
			row := sample{
				at: time.Since(s.started), instance: inst, pid: pid,
				rssKiB: rssKiB(pid), fds: fdCount(pid), goroutines: s.sh.goroutines(),
				replicas: len(runProcs(s.marker)),
			}
			if s.ok != nil {
				row.ok, row.failed = s.ok()
			}
			s.mu.Lock()
			s.rows = append(s.rows, row)
			s.mu.Unlock()
		}
	}()
}

func (s *sampler) halt() {
	close(s.stop)
	s.wg.Wait()
}

func (s *sampler) all() []sample {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sample(nil), s.rows...)
}
