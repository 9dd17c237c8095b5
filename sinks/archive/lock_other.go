//go:build !unix

package archive

import (
	"context"
	"sync"
)

var localLock sync.Mutex

// lockFile serializes merges within this process only (no flock here).
func lockFile(context.Context, string) (func(), error) {
	localLock.Lock()
	return localLock.Unlock, nil
}
