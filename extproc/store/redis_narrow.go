package store

import (
	"context"
	"crypto/rand"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tracebridge/tracebridge/engine"
)

// The narrowed strategy's part of the Redis store (engine.NarrowStore).

// In Redis the narrowed set lives beside the sole-in-flight one: members of
// the sorted set tracebridge:narrow:inflight (score: start time in ms, at
// most engine.MaxInFlightEntries of them) with their fingerprints and record
// in two hashes; a request that finds the set full goes to the sorted set
// tracebridge:narrow:overflow, and while it holds anyone every lookup is
// ambiguous. Each operation is one Lua script (atomic on the server) that
// first forgets entries older than the in-flight timeout.
//
// The fingerprint key is tracebridge:narrow:key, created once with SET NX
// by the first replica and read by the others, so that replicas compare
// each other's fingerprints. Each replica keeps it for narrowKeyRefresh: a
// key replaced meanwhile (the database flushed) only makes lookups miss.
const narrowKeyRefresh = 30 * time.Second

var (
	scriptNarrowExpire = `
local old = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
for _, o in ipairs(old) do
  redis.call('ZREM', KEYS[1], o)
  redis.call('HDEL', KEYS[2], o)
  redis.call('HDEL', KEYS[3], o)
end
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', ARGV[1])
`
	scriptNarrowEnter = redis.NewScript(scriptNarrowExpire + `
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[6]) then
  redis.call('ZADD', KEYS[4], ARGV[3], ARGV[2])
else
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[2])
  redis.call('HSET', KEYS[2], ARGV[2], ARGV[4])
  if ARGV[5] ~= '' then
    redis.call('HSET', KEYS[3], ARGV[2], ARGV[5])
  end
end
for i = 1, 4 do
  redis.call('PEXPIRE', KEYS[i], ARGV[7])
end
return 1`)
	scriptNarrowLeave = redis.NewScript(`
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
return 1`)
	scriptNarrow = redis.NewScript(scriptNarrowExpire + `
local want = {}
for i = 2, #ARGV do
  want[ARGV[i]] = true
end
local n, owner = 0, nil
for _, o in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local p = redis.call('HGET', KEYS[2], o)
  if p then
    for i = 1, #p - 7, 8 do
      if want[string.sub(p, i, i + 7)] then
        n, owner = n + 1, o
        break
      end
    end
  end
end
if redis.call('ZCARD', KEYS[4]) > 0 then
  return {math.max(n, 2)}
end
if n ~= 1 then
  return {n}
end
local rec = redis.call('HGET', KEYS[3], owner)
if not rec then
  return {n}
end
return {n, rec}`)
)

// redisNarrowKeys are the narrowed set's keys, in the scripts' order.
var redisNarrowKeys = []string{
	RedisKeyPrefix + "narrow:inflight", RedisKeyPrefix + "narrow:prints",
	RedisKeyPrefix + "narrow:rec", RedisKeyPrefix + "narrow:overflow",
}

// redisNarrowKey is a replica's copy of the fingerprint key.
type redisNarrowKey struct {
	mu      sync.Mutex
	key     [engine.NarrowKeySize]byte
	fetched time.Time
}

// NarrowKey implements engine.NarrowStore.
func (s *Redis) NarrowKey() ([engine.NarrowKeySize]byte, error) {
	st := &s.narrowKey
	st.mu.Lock()
	defer st.mu.Unlock()
	if !st.fetched.IsZero() && time.Since(st.fetched) < narrowKeyRefresh {
		return st.key, nil
	}
	if !s.up() {
		return st.key, ErrUnavailable
	}
	var k [engine.NarrowKeySize]byte
	if _, err := rand.Read(k[:]); err != nil {
		return st.key, err
	}
	ctx := context.Background()
	name := RedisKeyPrefix + "narrow:key"
	if err := s.check(s.c.SetNX(ctx, name, k[:], 0).Err()); err != nil {
		return st.key, err
	}
	b, err := s.c.Get(ctx, name).Bytes()
	if err := s.check(err); err != nil {
		return st.key, err
	}
	if len(b) != engine.NarrowKeySize {
		return st.key, errors.New("redis store: " + name + " is not a fingerprint key")
	}
	copy(st.key[:], b)
	st.fetched = time.Now()
	return st.key, nil
}

// EnterNarrow implements engine.NarrowStore.
func (s *Redis) EnterNarrow(owner uint64, rec []byte, prints []uint64) error {
	if !s.up() {
		return ErrUnavailable
	}
	now := s.now()
	timeout := time.Duration(s.timeout.Load())
	p := make([]byte, 0, 8*len(prints))
	for _, v := range prints[:min(len(prints), engine.MaxNarrowHeaders)] {
		p = append(p, byte(v>>56), byte(v>>48), byte(v>>40), byte(v>>32), byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	}
	err := scriptNarrowEnter.Run(context.Background(), s.c, redisNarrowKeys,
		now.Add(-timeout).UnixMilli(), strconv.FormatUint(owner, 10), now.UnixMilli(), p, rec,
		engine.MaxInFlightEntries, timeout.Milliseconds()).Err()
	return s.check(err)
}

// LeaveNarrow implements engine.NarrowStore.
func (s *Redis) LeaveNarrow(owner uint64) error {
	if !s.up() {
		return ErrUnavailable
	}
	err := scriptNarrowLeave.Run(context.Background(), s.c, redisNarrowKeys, strconv.FormatUint(owner, 10)).Err()
	return s.check(err)
}

// Narrow implements engine.NarrowStore.
func (s *Redis) Narrow(dst []byte, prints []uint64) (int, []byte, bool, error) {
	if !s.up() {
		return 0, dst, false, ErrUnavailable
	}
	args := make([]any, 1, 1+len(prints))
	args[0] = s.now().Add(-time.Duration(s.timeout.Load())).UnixMilli()
	for _, v := range prints {
		args = append(args, []byte{byte(v >> 56), byte(v >> 48), byte(v >> 40), byte(v >> 32), byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
	}
	v, err := scriptNarrow.Run(context.Background(), s.c, redisNarrowKeys, args...).Slice()
	if err := s.check(err); err != nil {
		return 0, dst, false, err
	}
	if len(v) == 0 {
		return 0, dst, false, errors.New("redis store: empty reply to the narrow script")
	}
	n, _ := v[0].(int64)
	if len(v) < 2 {
		return int(n), dst, false, nil
	}
	rec, _ := v[1].(string)
	return int(n), append(dst, rec...), rec != "", nil
}
