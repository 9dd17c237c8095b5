package trace

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/sightline/sightline/sinks/index"
)

// ErrNoIndexHere is returned when the embedded index the configuration
// names does not exist: the command runs where no `sightline run` kept its
// data (it keeps it under .sightline/ of the directory it runs in).
var ErrNoIndexHere = errors.New("no index here")

// OpenError explains why the index of ic could not be opened for reading:
// when its embedded index does not exist, err (which guesses at a lock)
// becomes ErrNoIndexHere naming the directory and how to point at an
// index; any other error is returned as it is.
func OpenError(ic index.Config, err error) error {
	if err == nil || ic.Remote() {
		return err
	}
	p := ic.EmbeddedPath
	if p == "" {
		p = index.DefaultEmbeddedPath
	}
	if _, serr := os.Stat(p); !errors.Is(serr, fs.ErrNotExist) {
		return err
	}
	abs, aerr := filepath.Abs(p)
	if aerr != nil {
		abs = p
	}
	return fmt.Errorf("%w: there is no embedded index at %s (index.embedded_path %s; `sightline run` keeps its data under .sightline/ "+
		"of the directory it was started in). Run this command from that directory, or point at its index with "+
		"--set index.embedded_path=DIR/.sightline/index, or at a running sightline with --api http://HOST:PORT "+
		"(its http.listen), or at OpenSearch/Elasticsearch with --set index.urls=URL", ErrNoIndexHere, abs, p)
}
