-- Register an immutable release: a name is written once, and only ever with the same contents.
--
-- KEYS[1] releases       HASH  release name -> canonical release JSON
-- KEYS[2] release order  ZSET  release name scored by registration time
-- ARGV[1] release name
-- ARGV[2] canonical release JSON (sorted keys, no spaces: equal contents give equal bytes)
-- ARGV[3] now, unix seconds
-- return 1 if registered now, 0 if already registered with the same contents,
--        -1 if registered with other contents (nothing written)

if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 1 then
    redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
    return 1
end
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
    return 0
end
return -1
