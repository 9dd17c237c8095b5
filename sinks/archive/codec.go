package archive

import (
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// gzipLevel is the deflate level of gzip objects. Level 2
// (klauspost/compress's fastest level with a larger hash table) took
// 1.4-2.1 CPU-µs per 512-byte event against 2.1-3.4 for the default level
// 5, for objects 1.2-2.7% larger (BENCHMARKS.md, "Archive and replay").
const gzipLevel = 2

// codec compresses NDJSON objects; encoders are pooled across writes.
type codec struct {
	name string
	ext  string
	pool *sync.Pool
}

func newCodec(name string) (codec, error) {
	switch name {
	case CompressionGzip:
		return codec{name: name, ext: ".gz", pool: &sync.Pool{}}, nil
	case CompressionZstd:
		return codec{name: name, ext: ".zst", pool: &sync.Pool{}}, nil
	case CompressionNone:
		return codec{name: name}, nil
	}
	return codec{}, fmt.Errorf("%w: archive.compression: unknown %q", ErrConfig, name)
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// pooledWriter returns its encoder to the pool on Close.
type pooledWriter struct {
	io.WriteCloser
	put func()
}

func (p *pooledWriter) Close() error {
	err := p.WriteCloser.Close()
	p.put()
	return err
}

func (c codec) writer(w io.Writer) (io.WriteCloser, error) {
	switch c.name {
	case CompressionGzip:
		gz, _ := c.pool.Get().(*gzip.Writer)
		if gz == nil {
			gz, _ = gzip.NewWriterLevel(w, gzipLevel) // a valid level: no error
		} else {
			gz.Reset(w)
		}
		return &pooledWriter{WriteCloser: gz, put: func() { c.pool.Put(gz) }}, nil
	case CompressionZstd:
		zw, _ := c.pool.Get().(*zstd.Encoder)
		if zw == nil {
			var err error
			zw, err = zstd.NewWriter(w, zstd.WithEncoderConcurrency(1))
			if err != nil {
				return nil, err
			}
		} else {
			zw.Reset(w)
		}
		return &pooledWriter{WriteCloser: zw, put: func() { c.pool.Put(zw) }}, nil
	}
	return nopCloser{w}, nil
}

// decompressor returns a reader of an object's NDJSON by its key's extension.
func decompressor(key string, r io.Reader) (io.ReadCloser, error) {
	switch {
	case strings.HasSuffix(key, ".gz"):
		gz, err := gzip.NewReader(r)
		if err != nil {
			return nil, err
		}
		return gz, nil
	case strings.HasSuffix(key, ".zst"):
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, err
		}
		return zr.IOReadCloser(), nil
	}
	return io.NopCloser(r), nil
}
