package abi

// hostAPI is the SDK's internal ProxyWasmHost interface (proxywasm/internal,
// abi_hostcalls_mock.go) restated with the underlying types of its parameters:
// uint32 for the internal LogLevel, MapType, BufferType, StreamType,
// MetricType and Status types, which code outside the SDK cannot name.
//
// The SDK stores the registered host in an interface variable and calls it
// through the itab. Both interfaces have the same method names, so the same
// method order, and each method has the same memory layout for arguments and
// results, so a hostAPI value passed where the SDK expects a ProxyWasmHost is
// called correctly. TestHostAPIMatchesSDK keeps the two in step.
//
// Do not add, remove or rename methods: the itab slot order must stay equal.
type hostAPI interface {
	ProxyLog(logLevel uint32, messageData *byte, messageSize int) uint32
	ProxySetProperty(pathData *byte, pathSize int, valueData *byte, valueSize int) uint32
	ProxyGetProperty(pathData *byte, pathSize int, returnValueData **byte, returnValueSize *int) uint32
	ProxySendLocalResponse(statusCode uint32, statusCodeDetailData *byte, statusCodeDetailsSize int, bodyData *byte, bodySize int, headersData *byte, headersSize int, grpcStatus int32) uint32
	ProxyGetSharedData(keyData *byte, keySize int, returnValueData **byte, returnValueSize *int, returnCas *uint32) uint32
	ProxySetSharedData(keyData *byte, keySize int, valueData *byte, valueSize int, cas uint32) uint32
	ProxyRegisterSharedQueue(nameData *byte, nameSize int, returnID *uint32) uint32
	ProxyResolveSharedQueue(vmIDData *byte, vmIDSize int, nameData *byte, nameSize int, returnID *uint32) uint32
	ProxyDequeueSharedQueue(queueID uint32, returnValueData **byte, returnValueSize *int) uint32
	ProxyEnqueueSharedQueue(queueID uint32, valueData *byte, valueSize int) uint32
	ProxyGetHeaderMapValue(mapType uint32, keyData *byte, keySize int, returnValueData **byte, returnValueSize *int) uint32
	ProxyAddHeaderMapValue(mapType uint32, keyData *byte, keySize int, valueData *byte, valueSize int) uint32
	ProxyReplaceHeaderMapValue(mapType uint32, keyData *byte, keySize int, valueData *byte, valueSize int) uint32
	ProxyContinueStream(streamType uint32) uint32
	ProxyCloseStream(streamType uint32) uint32
	ProxyRemoveHeaderMapValue(mapType uint32, keyData *byte, keySize int) uint32
	ProxyGetHeaderMapPairs(mapType uint32, returnValueData **byte, returnValueSize *int) uint32
	ProxySetHeaderMapPairs(mapType uint32, mapData *byte, mapSize int) uint32
	ProxyGetBufferBytes(bufferType uint32, start int, maxSize int, returnBufferData **byte, returnBufferSize *int) uint32
	ProxySetBufferBytes(bufferType uint32, start int, maxSize int, bufferData *byte, bufferSize int) uint32
	ProxyHttpCall(upstreamData *byte, upstreamSize int, headerData *byte, headerSize int, bodyData *byte, bodySize int, trailersData *byte, trailersSize int, timeout uint32, calloutIDPtr *uint32) uint32
	ProxyCallForeignFunction(funcNamePtr *byte, funcNameSize int, paramPtr *byte, paramSize int, returnData **byte, returnSize *int) uint32
	ProxySetTickPeriodMilliseconds(period uint32) uint32
	ProxySetEffectiveContext(contextID uint32) uint32
	ProxyDone() uint32
	ProxyDefineMetric(metricType uint32, metricNameData *byte, metricNameSize int, returnMetricIDPtr *uint32) uint32
	ProxyIncrementMetric(metricID uint32, offset int64) uint32
	ProxyRecordMetric(metricID uint32, value uint64) uint32
	ProxyGetMetric(metricID uint32, returnMetricValue *uint64) uint32
}
