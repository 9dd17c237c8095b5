package consume

import "github.com/sightline/sightline/internal/bus"

// DropPulls makes the pull loops that consumers of b start from now on
// lose (not send) the pull requests of their first gen generations, as a
// server that dropped them would.
func DropPulls(b *bus.Bus, gen uint64) { dropPulls.Store(b, gen) }
