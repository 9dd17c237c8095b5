package archive

import (
	"context"
	"errors"
	"io"

	"gocloud.dev/blob"

	"github.com/sightline/sightline/internal/stage"
)

const parquetAvailable = false

// ErrParquet is returned when Parquet output is asked for but not available.
var ErrParquet = errors.New("archive: parquet format is not available in this build")

func writeParquet(w io.Writer, p *partition, batch []*stage.Message) (int64, error) {
	return 0, ErrParquet
}

func readParquet(ctx context.Context, b *blob.Bucket, key string, fn func([]byte) error) error {
	return ErrParquet
}
