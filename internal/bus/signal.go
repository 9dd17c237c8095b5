package bus

// Signal wakes the goroutine that waits on ch (a channel of capacity 1)
// without blocking: when a wake is already pending, it is enough.
func Signal(ch chan<- struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
