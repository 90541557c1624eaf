package app

import "github.com/tracebridge/tracebridge/extproc/internal/extproctest"

// The helpers shared with the other packages' tests.
type syncBuffer = extproctest.SyncBuffer

const validTP = extproctest.ValidTP

var (
	hmap           = extproctest.HeaderMap
	reqHeadersMsg  = extproctest.RequestHeaders
	respHeadersMsg = extproctest.ResponseHeaders
	roundTrip      = extproctest.RoundTrip
	openStream     = extproctest.OpenStream
	closeStream    = extproctest.CloseStream
	headerPairs    = extproctest.HeaderPairs
	applyMutation  = extproctest.ApplyMutation
	headerValue    = extproctest.HeaderValue
	waitFor        = extproctest.WaitFor
)
