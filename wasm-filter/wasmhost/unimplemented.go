package wasmhost

// Unimplemented answers every host call with StatusUnimplemented. A Handler
// embeds it for the calls its host does not model.
type Unimplemented struct{}

var _ Handler = Unimplemented{}

const unimpl = StatusUnimplemented

func (Unimplemented) Log(uint32, []byte) uint32                         { return unimpl }
func (Unimplemented) GetProperty([]byte) ([]byte, uint32)               { return nil, unimpl }
func (Unimplemented) SetProperty(_, _ []byte) uint32                    { return unimpl }
func (Unimplemented) GetSharedData([]byte) ([]byte, uint32, uint32)     { return nil, 0, unimpl }
func (Unimplemented) SetSharedData(_, _ []byte, _ uint32) uint32        { return unimpl }
func (Unimplemented) RegisterSharedQueue([]byte) (uint32, uint32)       { return 0, unimpl }
func (Unimplemented) ResolveSharedQueue(_, _ []byte) (uint32, uint32)   { return 0, unimpl }
func (Unimplemented) DequeueSharedQueue(uint32) ([]byte, uint32)        { return nil, unimpl }
func (Unimplemented) EnqueueSharedQueue(uint32, []byte) uint32          { return unimpl }
func (Unimplemented) GetHeaderMapValue(uint32, []byte) ([]byte, uint32) { return nil, unimpl }
func (Unimplemented) AddHeaderMapValue(uint32, []byte, []byte) uint32   { return unimpl }
func (Unimplemented) ReplaceHeaderMapValue(uint32, []byte, []byte) uint32 {
	return unimpl
}
func (Unimplemented) RemoveHeaderMapValue(uint32, []byte) uint32       { return unimpl }
func (Unimplemented) GetHeaderMapPairs(uint32) ([]byte, uint32)        { return nil, unimpl }
func (Unimplemented) SetHeaderMapPairs(uint32, []byte) uint32          { return unimpl }
func (Unimplemented) GetBufferBytes(_, _, _ uint32) ([]byte, uint32)   { return nil, unimpl }
func (Unimplemented) SetBufferBytes(_, _, _ uint32, _ []byte) uint32   { return unimpl }
func (Unimplemented) ContinueStream(uint32) uint32                     { return unimpl }
func (Unimplemented) CloseStream(uint32) uint32                        { return unimpl }
func (Unimplemented) CallForeignFunction(_, _ []byte) ([]byte, uint32) { return nil, unimpl }
func (Unimplemented) SetTickPeriodMilliseconds(uint32) uint32          { return unimpl }
func (Unimplemented) SetEffectiveContext(uint32) uint32                { return unimpl }
func (Unimplemented) Done() uint32                                     { return unimpl }
func (Unimplemented) DefineMetric(uint32, []byte) (uint32, uint32)     { return 0, unimpl }
func (Unimplemented) IncrementMetric(uint32, int64) uint32             { return unimpl }
func (Unimplemented) RecordMetric(uint32, uint64) uint32               { return unimpl }
func (Unimplemented) GetMetric(uint32) (uint64, uint32)                { return 0, unimpl }
func (Unimplemented) SendLocalResponse(uint32, []byte, []byte, []byte, int32) uint32 {
	return unimpl
}
func (Unimplemented) HttpCall(_, _, _, _ []byte, _ uint32) (uint32, uint32) { return 0, unimpl }
