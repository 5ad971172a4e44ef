package fcrt

import (
	"bytes"
	"io"
	"sync"
)

// logSink serializes writes to the caller's writer: one complete line per Write.
type logSink struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *logSink) write(line []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// A failing writer must not stop the copy from the process (which would block it on a
	// full pipe) nor lose later lines, so the error is dropped here.
	_, _ = s.w.Write(line)
}

// lineWriter is an instance's stdout or stderr: it cuts what the process writes into lines,
// of any length, and prefixes each one. flush writes a last unterminated line.
type lineWriter struct {
	sink   *logSink
	prefix string

	mu  sync.Mutex
	buf []byte
}

// Write implements io.Writer.
func (l *lineWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	rest := l.buf
	for {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			break
		}
		l.emit(rest[:i+1])
		rest = rest[i+1:]
	}
	if len(rest) == 0 {
		l.buf = l.buf[:0]
	} else if len(rest) < len(l.buf) {
		l.buf = append(l.buf[:0], rest...)
	}
	return len(p), nil
}

func (l *lineWriter) emit(line []byte) {
	out := make([]byte, 0, len(l.prefix)+len(line)+1)
	out = append(out, l.prefix...)
	out = append(out, line...)
	if out[len(out)-1] != '\n' {
		out = append(out, '\n')
	}
	l.sink.write(out)
}

func (l *lineWriter) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buf) > 0 {
		l.emit(l.buf)
		l.buf = nil
	}
}
