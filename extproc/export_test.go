package extproc

// PassThrough is the CONTINUE reply of a message's kind, for the no-op
// server of the external benchmarks.
var PassThrough = passThrough
