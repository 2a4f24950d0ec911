-- Apply one planned pointer command atomically: check, write, record, publish.
-- Nothing is written unless every check passes; every outcome but "retry" is recorded in the
-- history, unless the service does not exist (no pointer, no release): no key is made for it.
--
-- KEYS[1]  pointer         STRING  pointer JSON, carries "epoch"
-- KEYS[2]  history         STREAM  one entry per command outcome
-- KEYS[3]  idempotency     STRING  record of the command that used this idempotency key
-- KEYS[4]  releases        HASH    release name -> release JSON
-- KEYS[5]  release order   ZSET    release name scored by registration time
-- KEYS[6]  spent           STRING  set once this command id ran: running it again is a replay
-- ARGV[1]  mode            "refuse": record a refusal and stop (bad signature, expired, ...)
--                          "plan":   run the checks below, then apply the planned result
-- ARGV[2]  planned epoch   the epoch the caller read and planned against (0: no pointer)
-- ARGV[3]  expected epoch  the command's compare-and-set epoch, "" for none
-- ARGV[4]  new pointer     pointer JSON with epoch = planned + 1; "" if the plan changes nothing
-- ARGV[5]  entry           JSON array [field, value, ...] describing the command for the history
-- ARGV[6]  refusal code    non-empty when the plan (or mode "refuse") refuses the command
-- ARGV[7]  message         human-readable outcome
-- ARGV[8]  idem record     JSON kept at KEYS[3] once the command applied
-- ARGV[9]  idem ttl        seconds to keep KEYS[3]
-- ARGV[10] derived name    release to register with the change (partial rollback), "" for none
-- ARGV[11] derived JSON
-- ARGV[12] channel         pub/sub channel that receives the new pointer JSON
-- ARGV[13] now             unix seconds (release order score)
-- ARGV[14] request         digest of what the command asks for; an idempotency key already
--                          used for another request is refused as a replay
-- ARGV[15] legacy channel  the channel of readers before the database was named (database 0
--                          only, until 2027-06-30), "" for none
-- ARGV[16] ramp guard      a "ramp" command's {"id", "from", "to"} as JSON, "" for any other:
--                          refused ("not_in_plan") unless the stored pointer carries a
--                          running rollout of that id, unpinned, whose release serves the
--                          share of its current step, "from" is that share and "to" the
--                          plan's next step (actions/rollout.py ramp_refusal says the same)
-- return {outcome, code, message, epoch_before, epoch_after, history entry id[, changed at]}
--   "changed at" (only when applied): Redis's own TIME of the change, "seconds.micros", which
--   the script writes into the new pointer's "updated_at" in place of the planned value;
--   outcome "applied" | "already_applied" | "conflict" | "refused" | "retry";
--   the history entry id is "" when the service does not exist;
--   "retry" (nothing written or recorded): the pointer moved since the caller read it and the
--   command carries no expected epoch, so the caller reads again and plans again.

local raw = redis.call('GET', KEYS[1])
local current = 0
if raw then
    current = tonumber(cjson.decode(raw)['epoch'])
end

local known = raw or redis.call('EXISTS', KEYS[4]) == 1

local function record(outcome, code, message, after)
    if not known then
        return {outcome, code, message, current, after, ''}
    end
    local fields = cjson.decode(ARGV[5])
    local tail = {'outcome', outcome, 'code', code, 'message', message,
                  'epoch_before', tostring(current), 'epoch_after', tostring(after)}
    for _, value in ipairs(tail) do
        table.insert(fields, value)
    end
    local id = redis.call('XADD', KEYS[2], '*', unpack(fields))
    return {outcome, code, message, current, after, id}
end

if ARGV[1] == 'refuse' then
    return record('refused', ARGV[6], ARGV[7], current)
end

if redis.call('EXISTS', KEYS[6]) == 1 then
    return record('refused', 'replayed', 'this command already ran once', current)
end

-- Every outcome from here on but "retry" spends the command id.
local function spend(outcome, code, message, after)
    if known then
        redis.call('SET', KEYS[6], '1', 'EX', tonumber(ARGV[9]))
    end
    return record(outcome, code, message, after)
end

local done = redis.call('GET', KEYS[3])
if done then
    local previous = cjson.decode(done)
    if previous['request'] and previous['request'] ~= ARGV[14] then
        return spend('refused', 'replayed', 'idempotency key already used by command ' ..
            previous['command_id'] .. ' for another request', current)
    end
    return spend('already_applied', 'duplicate',
        'idempotency key already used by command ' .. previous['command_id'] ..
        ' (epoch ' .. tostring(previous['epoch']) .. ')', current)
end

if ARGV[3] ~= '' and tonumber(ARGV[3]) ~= current then
    return spend('conflict', 'epoch_moved', 'expected epoch ' .. ARGV[3] ..
        ' but the pointer is at epoch ' .. tostring(current), current)
end

if tonumber(ARGV[2]) ~= current then
    return {'retry', '', 'the pointer moved while planning', current, current, ''}
end

if ARGV[6] ~= '' then
    return spend('refused', ARGV[6], ARGV[7], current)
end

-- Why a ramp is outside the plan stored with the pointer, or nil.
local function off_plan(guard)
    if not raw then
        return 'no pointer'
    end
    local p = cjson.decode(raw)
    local r = p['rollout']
    if type(r) ~= 'table' then
        return 'no rollout under way'
    end
    if r['id'] ~= guard['id'] then
        return 'it names another rollout than ' .. tostring(r['id'])
    end
    if r['status'] ~= 'running' or p['pinned'] == true then
        return 'the rollout is ' .. tostring(r['status']) ..
            (p['pinned'] == true and ' and the service pinned' or '')
    end
    local steps = r['plan']['steps']
    local at = tonumber(r['step']) + 1
    local share = 0
    if p['candidate'] == r['release'] then
        share = tonumber(p['percent'])
    elseif p['candidate'] == cjson.null and p['active'] == r['release'] then
        share = 100
    end
    if tonumber(guard['from']) ~= tonumber(steps[at]) or share ~= tonumber(steps[at]) then
        return 'it does not move from the share of the current step'
    end
    if steps[at + 1] == nil or tonumber(guard['to']) ~= tonumber(steps[at + 1]) then
        return 'it does not move to the next step of the plan'
    end
    return nil
end

if ARGV[16] ~= '' then
    local problem = off_plan(cjson.decode(ARGV[16]))
    if problem then
        return spend('refused', 'not_in_plan', 'ramp refused by the stored plan: ' .. problem,
            current)
    end
end

redis.call('SET', KEYS[3], ARGV[8], 'EX', tonumber(ARGV[9]))
if ARGV[4] == '' then
    return spend('already_applied', 'no_change', ARGV[7], current)
end

if ARGV[10] ~= '' and redis.call('HSETNX', KEYS[4], ARGV[10], ARGV[11]) == 1 then
    redis.call('ZADD', KEYS[5], ARGV[13], ARGV[10])
end
-- updated_at is the server's time of the change, not the writer's planning time. The
-- pattern matches the top-level field only: component values are strings, and a quote
-- inside a string is escaped.
local clock = redis.call('TIME')
local changed_at = string.format('%d.%06d', tonumber(clock[1]), tonumber(clock[2]))
local pointer = string.gsub(ARGV[4], '"updated_at":[-+.%deE]+', '"updated_at":' .. changed_at, 1)
redis.call('SET', KEYS[1], pointer)
known = true
local result = spend('applied', '', ARGV[7], current + 1)
table.insert(result, changed_at)
redis.call('PUBLISH', ARGV[12], pointer)
if ARGV[15] ~= '' then
    -- The channel of readers written before the database was named (deprecated).
    redis.call('PUBLISH', ARGV[15], pointer)
end
return result
