package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

func newLogsCmd(g *globals) *cobra.Command {
	var (
		replica string
		lines   int
		follow  bool
	)
	cmd := &cobra.Command{
		Use:   "logs APP DEPLOYMENT",
		Short: "Show the output of a deployment's replicas",
		Long: `Show the stdout and stderr of a deployment's replicas, read from
<state-dir>/logs/<app>/<deployment>/<replica>.log on this machine. Without --replica,
every replica's lines are shown, each prefixed with the replica's id.`,
		Args: exactArgs("APP", "DEPLOYMENT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if lines < 0 {
				return usagef("--lines must be >= 0, got %d", lines)
			}
			dir := filepath.Join(g.stateDir, "logs", args[0], args[1])
			lg := &logTail{dir: dir, replica: replica, prefix: replica == "", out: g.env.Stdout, offsets: map[string]*tailState{}}
			if err := lg.initial(lines, follow); err != nil {
				return err
			}
			if !follow {
				return nil
			}
			return lg.follow(cmd.Context(), 250*time.Millisecond)
		},
	}
	f := cmd.Flags()
	f.StringVar(&replica, "replica", "", "show only this replica (its id, as in 'shoal status -o json')")
	f.IntVarP(&lines, "lines", "n", 100, "how many of the last lines of each replica to show")
	f.BoolVarP(&follow, "follow", "f", false, "keep printing new lines until interrupted")
	return cmd
}

// logTail prints the log files of one deployment. It is used by one goroutine.
type logTail struct {
	dir     string
	replica string // only this replica's file, when set
	prefix  bool   // prefix each line with the replica id
	out     io.Writer
	offsets map[string]*tailState // by file path
}

type tailState struct {
	offset  int64
	partial []byte // a last line without its newline yet
}

// files lists the log files to show, oldest first (by modification time).
func (t *logTail) files() ([]string, error) {
	if t.replica != "" {
		p := filepath.Join(t.dir, t.replica+".log")
		if _, err := os.Stat(p); err != nil {
			return nil, err
		}
		return []string{p}, nil
	}
	paths, err := filepath.Glob(filepath.Join(t.dir, "*.log"))
	if err != nil {
		return nil, err
	}
	mod := map[string]time.Time{}
	for _, p := range paths {
		if fi, err := os.Stat(p); err == nil {
			mod[p] = fi.ModTime()
		}
	}
	sort.SliceStable(paths, func(i, j int) bool { return mod[paths[i]].Before(mod[paths[j]]) })
	return paths, nil
}

// initial prints the last n lines of each file. When following, a last line still being
// written is held back until its newline arrives.
func (t *logTail) initial(n int, follow bool) error {
	if _, err := os.Stat(t.dir); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("no logs in %s; check the application and deployment names with 'shoal status', and --state-dir", t.dir)
	}
	paths, err := t.files()
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("no log of replica %q in %s; list the replicas with 'shoal status -o json'", t.replica, t.dir)
	}
	if err != nil {
		return err
	}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		st := &tailState{offset: int64(len(data))}
		t.offsets[p] = st
		body, rest := splitComplete(data)
		if follow {
			st.partial = append(st.partial, rest...)
		} else if len(rest) > 0 {
			body = append(append(body, rest...), '\n')
		}
		t.write(p, lastLines(body, n))
	}
	return nil
}

// follow polls the files for new lines (and new replicas' files) until ctx is done.
// Polling, not inotify: it is portable and the files are small and few.
func (t *logTail) follow(ctx context.Context, every time.Duration) error {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		paths, err := t.files()
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		for _, p := range paths {
			if err := t.readNew(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
	}
}

func (t *logTail) readNew(p string) error {
	st, ok := t.offsets[p]
	if !ok {
		st = &tailState{}
		t.offsets[p] = st
	}
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() < st.offset {
		// The file was truncated (the size cap): start over from its beginning.
		st.offset, st.partial = 0, nil
	}
	if fi.Size() == st.offset {
		return nil
	}
	data, err := io.ReadAll(io.NewSectionReader(f, st.offset, fi.Size()-st.offset))
	if err != nil {
		return err
	}
	st.offset += int64(len(data))
	data = append(st.partial, data...)
	body, rest := splitComplete(data)
	st.partial = append([]byte(nil), rest...)
	t.write(p, body)
	return nil
}

func (t *logTail) write(path string, body []byte) {
	if len(body) == 0 {
		return
	}
	if !t.prefix {
		t.out.Write(body)
		return
	}
	id := strings.TrimSuffix(filepath.Base(path), ".log")
	var b bytes.Buffer
	for line := range bytes.Lines(body) {
		b.WriteString(id)
		b.WriteString(" | ")
		b.Write(line)
	}
	t.out.Write(b.Bytes())
}

// splitComplete splits data into whole lines and a trailing fragment without a newline.
func splitComplete(data []byte) (body, rest []byte) {
	i := bytes.LastIndexByte(data, '\n')
	return data[:i+1], data[i+1:]
}

// lastLines returns the last n lines of body (whole lines, each ending in a newline).
func lastLines(body []byte, n int) []byte {
	if n == 0 {
		return nil
	}
	end := len(body)
	i := end
	for count := 0; i > 0; {
		j := bytes.LastIndexByte(body[:i-1], '\n')
		count++
		i = j + 1
		if count == n || j < 0 {
			break
		}
	}
	return body[i:end]
}
