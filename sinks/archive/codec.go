package archive

import (
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

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
			gz = gzip.NewWriter(w)
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
