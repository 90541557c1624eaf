package store

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tracebridge/tracebridge/engine"
)

// RedisKeyPrefix starts every key tracebridge writes.
const RedisKeyPrefix = "tracebridge:"

// ErrUnavailable is returned while the Redis store backs off after a
// connection error, so requests do not each wait for a dial timeout.
var ErrUnavailable = errors.New("redis store unavailable (backing off after an error)")

// RedisOptions tune the Redis store.
type RedisOptions struct {
	// Timeout bounds each command, dial and pool wait included (default 50ms:
	// the whole ext_proc exchange has Envoy's message_timeout, 200ms by default).
	Timeout time.Duration
	// Backoff is how long the store fails fast after a connection error
	// (default 1s).
	Backoff time.Duration
	// Now is the clock of the in-flight start times (nil: time.Now). Every
	// replica sharing the database compares its own clock with the others'
	// start times, so replicas need synchronised clocks.
	Now func() time.Time
}

// Redis is an engine.Store in Redis, shared by every replica that points
// at the same database: records under "tracebridge:rec:<key>" with SET PX;
// the inbound requests in flight in the sorted set "tracebridge:inflight"
// (member: owner, score: start time in ms) with their records in the hash
// "tracebridge:inflight:rec". Sole runs as one Lua script (atomic on the
// server): it forgets entries older than the in-flight timeout, counts, and
// returns the record when exactly one request is in flight.
type Redis struct {
	c       *redis.Client
	ttl     atomic.Int64 // nanoseconds
	backoff time.Duration
	// timeout is the newest policy's correlation.inFlightTimeout: how long
	// a request stays counted in flight when its end is never seen (a
	// replica that died with streams open), so the count heals.
	timeout atomic.Int64 // nanoseconds
	now     func() time.Time
	downTil atomic.Int64 // unix nanoseconds

	keyInFlight, keyInFlightRec string
	narrowKey                   redisNarrowKey // redis_narrow.go
}

var (
	scriptEnter = redis.NewScript(`
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return 1`)
	scriptLeave = redis.NewScript(`
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return 1`)
	scriptSole = redis.NewScript(`
local old = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
for _, o in ipairs(old) do
  redis.call('ZREM', KEYS[1], o)
  redis.call('HDEL', KEYS[2], o)
end
local n = redis.call('ZCARD', KEYS[1])
if n ~= 1 then
  return {n}
end
local owner = redis.call('ZRANGE', KEYS[1], 0, 0)[1]
local rec = redis.call('HGET', KEYS[2], owner)
if not rec then
  return {n}
end
return {n, rec}`)
)

// NewRedis connects to a redis:// (or rediss://) URL. It does not fail
// when Redis is down: the store fails open until it comes back.
func NewRedis(url string, o RedisOptions) (*Redis, error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("--store: %w", err)
	}
	if o.Timeout <= 0 {
		o.Timeout = 50 * time.Millisecond
	}
	if o.Backoff <= 0 {
		o.Backoff = time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	opt.DialTimeout = o.Timeout
	opt.ReadTimeout = o.Timeout
	opt.WriteTimeout = o.Timeout
	opt.PoolTimeout = o.Timeout
	opt.MaxRetries = -1   // fail fast; the engine fails open
	opt.DialerRetries = 1 // one dial per attempt, then the back-off
	opt.DisableIdentity = true
	s := &Redis{
		c:              redis.NewClient(opt),
		backoff:        o.Backoff,
		now:            o.Now,
		keyInFlight:    RedisKeyPrefix + "inflight",
		keyInFlightRec: RedisKeyPrefix + "inflight:rec",
	}
	s.ttl.Store(int64(30 * time.Second))
	s.timeout.Store(int64(engine.DefaultInFlightTimeout))
	return s, nil
}

// redisLogger sends go-redis's own log lines (pool dial failures, mostly
// repeated by the store error counter) to slog at debug level.
type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, "go-redis: "+fmt.Sprintf(format, v...))
}

// SetRedisLogger routes go-redis's process-wide logger to log.
func SetRedisLogger(log *slog.Logger) { redis.SetLogger(redisLogger{log}) }

// Ping checks the connection (used at start-up to log the store's state).
func (s *Redis) Ping(ctx context.Context) error { return s.c.Ping(ctx).Err() }

// StoreFor implements Provider: one shared client, the TTL and the
// in-flight timeout of the newest policy.
func (s *Redis) StoreFor(cfg *engine.Config) engine.Store {
	if cfg.TTL > 0 {
		s.ttl.Store(int64(cfg.TTL))
	}
	if cfg.InFlightTimeout > 0 {
		s.timeout.Store(int64(cfg.InFlightTimeout))
	}
	return s
}

// Close closes the client.
func (s *Redis) Close() error { return s.c.Close() }

// recKey is the Redis key of a record: keys longer than engine.MaxKeyBytes
// (a client can send any x-request-id) are replaced by their SHA-256, under
// a prefix of their own.
func (s *Redis) recKey(key string) string {
	if k, hashed := engine.StoredKey(key); hashed {
		return RedisKeyPrefix + "rech:" + hex.EncodeToString([]byte(k))
	}
	return RedisKeyPrefix + "rec:" + key
}

// up reports whether the store is outside a back-off period.
func (s *Redis) up() bool {
	t := s.downTil.Load()
	return t == 0 || time.Now().UnixNano() >= t
}

// check starts a back-off period on errors other than "no such key".
func (s *Redis) check(err error) error {
	if err == nil || errors.Is(err, redis.Nil) {
		s.downTil.Store(0)
		return nil
	}
	var rerr redis.Error
	if !errors.As(err, &rerr) { // a network error, not a server reply
		s.downTil.Store(time.Now().Add(s.backoff).UnixNano())
	}
	return err
}

func (s *Redis) Put(key string, rec []byte) error {
	if len(rec) > engine.MaxRecordBytes {
		return engine.ErrRecordTooLarge
	}
	if !s.up() {
		return ErrUnavailable
	}
	return s.check(s.c.Set(context.Background(), s.recKey(key), rec, time.Duration(s.ttl.Load())).Err())
}

func (s *Redis) Get(dst []byte, key string) ([]byte, bool, error) {
	if !s.up() {
		return dst, false, ErrUnavailable
	}
	b, err := s.c.Get(context.Background(), s.recKey(key)).Bytes()
	if errors.Is(err, redis.Nil) {
		s.check(nil)
		return dst, false, nil
	}
	if err := s.check(err); err != nil {
		return dst, false, err
	}
	return append(dst, b...), true, nil
}

func (s *Redis) Enter(owner uint64, rec []byte) error {
	if len(rec) > engine.MaxRecordBytes {
		rec = nil // counted without a record, like engine.InFlightSet
	}
	if !s.up() {
		return ErrUnavailable
	}
	err := scriptEnter.Run(context.Background(), s.c, []string{s.keyInFlight, s.keyInFlightRec},
		strconv.FormatUint(owner, 10), s.now().UnixMilli(), rec, time.Duration(s.timeout.Load()).Milliseconds()).Err()
	return s.check(err)
}

func (s *Redis) Leave(owner uint64) error {
	if !s.up() {
		return ErrUnavailable
	}
	err := scriptLeave.Run(context.Background(), s.c, []string{s.keyInFlight, s.keyInFlightRec},
		strconv.FormatUint(owner, 10)).Err()
	return s.check(err)
}

func (s *Redis) Sole(dst []byte) (int, []byte, bool, error) {
	if !s.up() {
		return 0, dst, false, ErrUnavailable
	}
	cut := s.now().Add(-time.Duration(s.timeout.Load())).UnixMilli()
	v, err := scriptSole.Run(context.Background(), s.c, []string{s.keyInFlight, s.keyInFlightRec}, cut).Slice()
	if err := s.check(err); err != nil {
		return 0, dst, false, err
	}
	if len(v) == 0 {
		return 0, dst, false, errors.New("redis store: empty reply to the sole script")
	}
	n, _ := v[0].(int64)
	if len(v) < 2 {
		return int(n), dst, false, nil
	}
	rec, _ := v[1].(string)
	return int(n), append(dst, rec...), rec != "", nil
}
