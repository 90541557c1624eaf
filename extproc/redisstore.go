package extproc

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tracebridge/tracebridge/engine"
)

// RedisKeyPrefix starts every key tracebridge writes.
const RedisKeyPrefix = "tracebridge:"

// ErrStoreUnavailable is returned while the Redis store backs off after a
// connection error, so requests do not each wait for a dial timeout.
var ErrStoreUnavailable = errors.New("redis store unavailable (backing off after an error)")

// maxRedisKey bounds the length of a record key as sent to Redis; longer keys
// (a client can send any x-request-id) are replaced by their SHA-256.
const maxRedisKey = 256

// RedisOptions tune the Redis store.
type RedisOptions struct {
	// Timeout bounds each command, dial and pool wait included (default 50ms:
	// the whole ext_proc exchange has Envoy's message_timeout, 200ms by default).
	Timeout time.Duration
	// Backoff is how long the store fails fast after a connection error
	// (default 1s).
	Backoff time.Duration
	// InFlightLease is the expiry of the shared in-flight counter, refreshed on
	// every change, so a replica that dies with requests in flight does not
	// make the sole-in-flight strategy ambiguous forever (default 5m).
	InFlightLease time.Duration
}

// RedisStore is an engine.Store in Redis, shared by every replica that points
// at the same database: records under "tracebridge:rec:<key>" with SET PX, the
// in-flight count under "tracebridge:inflight" (INCRBY, never below zero) and
// the sole record in the hash "tracebridge:sole" {owner, rec}, cleared only by
// its owner (a Lua script, atomic on the server).
type RedisStore struct {
	c       *redis.Client
	ttl     atomic.Int64 // nanoseconds
	backoff time.Duration
	lease   time.Duration
	downTil atomic.Int64 // unix nanoseconds

	keyInFlight, keySole string
}

var (
	scriptAddInFlight = redis.NewScript(`
local v = redis.call('INCRBY', KEYS[1], ARGV[1])
if v < 0 then
  redis.call('SET', KEYS[1], 0)
  v = 0
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return v`)
	scriptClearSole = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'owner') == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0`)
)

// NewRedisStore connects to a redis:// (or rediss://) URL. It does not fail
// when Redis is down: the store fails open until it comes back.
func NewRedisStore(url string, o RedisOptions) (*RedisStore, error) {
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
	if o.InFlightLease <= 0 {
		o.InFlightLease = 5 * time.Minute
	}
	opt.DialTimeout = o.Timeout
	opt.ReadTimeout = o.Timeout
	opt.WriteTimeout = o.Timeout
	opt.PoolTimeout = o.Timeout
	opt.MaxRetries = -1 // fail fast; the engine fails open
	opt.DisableIdentity = true
	s := &RedisStore{
		c:           redis.NewClient(opt),
		backoff:     o.Backoff,
		lease:       o.InFlightLease,
		keyInFlight: RedisKeyPrefix + "inflight",
		keySole:     RedisKeyPrefix + "sole",
	}
	s.ttl.Store(int64(30 * time.Second))
	return s, nil
}

// Ping checks the connection (used at start-up to log the store's state).
func (s *RedisStore) Ping(ctx context.Context) error { return s.c.Ping(ctx).Err() }

// StoreFor implements StoreProvider: one shared client, the TTL of the newest
// policy.
func (s *RedisStore) StoreFor(cfg *engine.Config) engine.Store {
	if cfg.TTL > 0 {
		s.ttl.Store(int64(cfg.TTL))
	}
	return s
}

// Close closes the client.
func (s *RedisStore) Close() error { return s.c.Close() }

func (s *RedisStore) recKey(key string) string {
	if len(key) > maxRedisKey {
		sum := sha256.Sum256([]byte(key))
		return RedisKeyPrefix + "rech:" + hex.EncodeToString(sum[:])
	}
	return RedisKeyPrefix + "rec:" + key
}

// up reports whether the store is outside a back-off period.
func (s *RedisStore) up() bool {
	t := s.downTil.Load()
	return t == 0 || time.Now().UnixNano() >= t
}

// check starts a back-off period on errors other than "no such key".
func (s *RedisStore) check(err error) error {
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

func (s *RedisStore) Put(key string, rec []byte) error {
	if !s.up() {
		return ErrStoreUnavailable
	}
	return s.check(s.c.Set(context.Background(), s.recKey(key), rec, time.Duration(s.ttl.Load())).Err())
}

func (s *RedisStore) Get(dst []byte, key string) ([]byte, bool, error) {
	if !s.up() {
		return dst, false, ErrStoreUnavailable
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

func (s *RedisStore) AddInFlight(delta int64) (int64, error) {
	if !s.up() {
		return 0, ErrStoreUnavailable
	}
	ctx := context.Background()
	if delta == 0 {
		n, err := s.c.Get(ctx, s.keyInFlight).Int64()
		if errors.Is(err, redis.Nil) {
			s.check(nil)
			return 0, nil
		}
		if err := s.check(err); err != nil {
			return 0, err
		}
		return max(n, 0), nil
	}
	n, err := scriptAddInFlight.Run(ctx, s.c, []string{s.keyInFlight}, delta, s.lease.Milliseconds()).Int64()
	if err := s.check(err); err != nil {
		return 0, err
	}
	return n, nil
}

func (s *RedisStore) PutSole(owner uint64, rec []byte) error {
	if !s.up() {
		return ErrStoreUnavailable
	}
	ctx := context.Background()
	_, err := s.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, s.keySole, "owner", strconv.FormatUint(owner, 10), "rec", rec)
		p.PExpire(ctx, s.keySole, time.Duration(s.ttl.Load()))
		return nil
	})
	return s.check(err)
}

func (s *RedisStore) Sole(dst []byte) (uint64, []byte, bool, error) {
	if !s.up() {
		return 0, dst, false, ErrStoreUnavailable
	}
	vals, err := s.c.HMGet(context.Background(), s.keySole, "owner", "rec").Result()
	if err := s.check(err); err != nil {
		return 0, dst, false, err
	}
	os, _ := vals[0].(string)
	rec, _ := vals[1].(string)
	owner, perr := strconv.ParseUint(os, 10, 64)
	if perr != nil || owner == 0 {
		return 0, dst, false, nil
	}
	return owner, append(dst, rec...), true, nil
}

func (s *RedisStore) ClearSole(owner uint64) error {
	if !s.up() {
		return ErrStoreUnavailable
	}
	err := scriptClearSole.Run(context.Background(), s.c, []string{s.keySole}, strconv.FormatUint(owner, 10)).Err()
	return s.check(err)
}
