package dashboard

import (
	"bytes"
	"io"
	"os"
)

// tail returns the last n lines of the file at path, reading at most maxBytes from its
// end, so a large log costs only what is shown.
func tail(path string, n int, maxBytes int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	off := max(st.Size()-maxBytes, 0)
	buf := make([]byte, st.Size()-off)
	if _, err := f.ReadAt(buf, off); err != nil && err != io.EOF {
		return nil, err
	}
	if off > 0 {
		// The first line read is likely cut; start at the next one.
		if i := bytes.IndexByte(buf, '\n'); i >= 0 {
			buf = buf[i+1:]
		}
	}
	// Count lines from the end, ignoring the file's final newline.
	end := len(buf)
	if end > 0 && buf[end-1] == '\n' {
		end--
	}
	start := end
	for lines := 0; start > 0; {
		i := bytes.LastIndexByte(buf[:start], '\n')
		if i < 0 {
			start = 0
			break
		}
		lines++
		if lines == n {
			start = i + 1
			break
		}
		start = i
	}
	return buf[start:], nil
}
