package loss

// AckSeqs is ackSeqs, for the differential test against nats.go.
var AckSeqs = ackSeqs
