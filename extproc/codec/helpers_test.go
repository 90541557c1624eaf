package codec

import "github.com/tracebridge/tracebridge/extproc/internal/extproctest"

const validTP = extproctest.ValidTP

// The request attributes the ext_proc filter is asked to send.
const (
	attrSourceAddress     = "source.address"
	attrPeerURISAN        = "connection.uri_san_peer_certificate"
	attrListenerDirection = "xds.listener_direction"
)

// The helpers shared with the other packages' tests.
var (
	hmap           = extproctest.HeaderMap
	hmapValue      = extproctest.HeaderMapValue
	attrs          = extproctest.Attrs
	reqHeadersMsg  = extproctest.RequestHeaders
	respHeadersMsg = extproctest.ResponseHeaders
)
