package read

import "github.com/nats-io/nats.go"

// Server status codes on a pull request's inbox.
const (
	statusHeartbeat = "100"
	statusTimeout   = "408"
	statusConflict  = "409"
	// PendingHeader is the header of a pull request's end that says how
	// many messages it did not deliver.
	PendingHeader = "Nats-Pending-Messages"
)

// StatusKind is what a server status message on a pull inbox means, the
// same for the stream reader and the durable consumers' pull loop
// (internal/bus/consume).
type StatusKind int

const (
	StatusIdle     StatusKind = iota // an idle heartbeat
	StatusEnded                      // a request ended owing PendingHeader messages
	StatusRecreate                   // the consumer is gone (deleted, push based, no responders)
	StatusDropped                    // the server dropped the requests: ask again
)

// ClassifyStatus reads a status message (one with no reply subject: a
// stored message always has one, whatever its headers).
func ClassifyStatus(h nats.Header) StatusKind {
	code, desc := h.Get("Status"), h.Get("Description")
	switch {
	case code == statusHeartbeat:
		return StatusIdle
	case (code == statusTimeout || code == statusConflict) && h.Get(PendingHeader) != "":
		return StatusEnded
	case code == statusConflict && (desc == "Consumer Deleted" || desc == "Consumer is push based"):
		return StatusRecreate
	case code == "503":
		return StatusRecreate
	default:
		// Leadership change, server shutdown, limits, 404/408 without
		// counts: the server dropped the requests.
		return StatusDropped
	}
}
