package api

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

const (
	defaultLogLines = 100
	maxLogLines     = 10000
)

// replicaLogs answers the last lines of a replica's log file as text.
func (a *API) replicaLogs(w http.ResponseWriter, r *http.Request) error {
	app, dep, id := r.PathValue("app"), r.PathValue("dep"), r.PathValue("replica")
	for _, c := range []string{app, dep, id} {
		if !safeComponent(c) {
			return errorf(http.StatusBadRequest, "invalid path component %q", c)
		}
	}
	n := defaultLogLines
	if s := r.URL.Query().Get("lines"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 {
			return errorf(http.StatusBadRequest, "lines must be a positive integer, got %q", s)
		}
		n = min(v, maxLogLines)
	}
	if a.opts.LogDir == "" {
		return errorf(http.StatusNotFound, "no logs for replica %q of %s/%s", id, app, dep)
	}
	text, err := tailFile(filepath.Join(a.opts.LogDir, app, dep, id+".log"), n)
	if errors.Is(err, fs.ErrNotExist) {
		return errorf(http.StatusNotFound, "no logs for replica %q of %s/%s", id, app, dep)
	}
	if err != nil {
		return fmt.Errorf("reading the log of replica %q: %w", id, err)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, err = w.Write(text)
	return err
}

// safeComponent accepts one path element that cannot climb out of the log directory.
func safeComponent(s string) bool {
	return s != "" && s != "." && s != ".." && !strings.ContainsAny(s, `/\`+"\x00")
}

// tailFile returns the last n lines of a file, reading backwards in blocks so a large
// log costs only what is returned.
func tailFile(path string, n int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	const block = 32 << 10
	end := st.Size()
	var buf []byte
	for off := end; off > 0; {
		size := int64(block)
		if off < size {
			size = off
		}
		off -= size
		chunk := make([]byte, size)
		if _, err := f.ReadAt(chunk, off); err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		buf = append(chunk, buf...)
		// A final newline ends the last line; it does not start another.
		if bytes.Count(bytes.TrimSuffix(buf, []byte("\n")), []byte("\n")) >= n {
			break
		}
	}
	trimmed := bytes.TrimSuffix(buf, []byte("\n"))
	for i := len(trimmed) - 1; i >= 0; i-- {
		if trimmed[i] == '\n' {
			n--
			if n == 0 {
				return buf[i+1:], nil
			}
		}
	}
	return buf, nil
}
