package process

import (
	"bytes"
	"os"
	"strings"
	"sync"
)

// tailBytes is how much of the most recent output a log keeps in memory for crash
// messages.
const tailBytes = 8 << 10

// logFile is a replica's size-capped log: past max bytes it renames itself to
// path+".1" (replacing the previous one) and starts again, so at most two files of at
// most max bytes each exist. It also remembers the last few KiB for crash messages.
type logFile struct {
	path string
	max  int64

	mu   sync.Mutex // guards f, size and tail
	f    *os.File
	size int64
	tail []byte
}

func openLog(path string, max int64) (*logFile, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &logFile{path: path, max: max, f: f, size: fi.Size()}, nil
}

// Write writes p, rotating as needed so that no file grows past max. A rotation cuts
// at the last newline that fits, so lines stay whole unless one is longer than max.
func (l *logFile) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.remember(p)
	n := len(p)
	for len(p) > 0 {
		if l.f == nil {
			return n - len(p), os.ErrClosed
		}
		room := l.max - l.size
		if int64(len(p)) <= room {
			if err := l.write(p); err != nil {
				return n - len(p), err
			}
			break
		}
		cut := 0
		if room > 0 {
			if i := bytes.LastIndexByte(p[:room], '\n'); i >= 0 {
				cut = i + 1
			} else if l.size == 0 {
				cut = int(room) // a line longer than the cap: split it
			}
		}
		if err := l.write(p[:cut]); err != nil {
			return n - len(p), err
		}
		p = p[cut:]
		if err := l.rotate(); err != nil {
			return n - len(p), err
		}
	}
	return n, nil
}

func (l *logFile) write(p []byte) error {
	w, err := l.f.Write(p)
	l.size += int64(w)
	return err
}

func (l *logFile) rotate() error {
	if err := l.f.Close(); err != nil {
		l.f = nil
		return err
	}
	l.f = nil
	if err := os.Rename(l.path, l.path+".1"); err != nil {
		return err
	}
	f, err := os.OpenFile(l.path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	l.f, l.size = f, 0
	return nil
}

func (l *logFile) remember(p []byte) {
	if len(p) >= tailBytes {
		l.tail = append(l.tail[:0], p[len(p)-tailBytes:]...)
		return
	}
	if over := len(l.tail) + len(p) - tailBytes; over > 0 {
		l.tail = append(l.tail[:0], l.tail[over:]...)
	}
	l.tail = append(l.tail, p...)
}

// lastLines returns up to n of the last lines written, without empty trailing ones.
func (l *logFile) lastLines(n int) []string {
	l.mu.Lock()
	s := string(l.tail)
	l.mu.Unlock()
	s = strings.TrimRight(s, "\r\n")
	if s == "" {
		return nil
	}
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	for i := range lines {
		lines[i] = strings.TrimRight(lines[i], "\r")
	}
	return lines
}

// Close closes the current file.
func (l *logFile) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}
