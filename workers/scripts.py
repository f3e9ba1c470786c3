"""Lua scripts: each one event's (or one order's) writes, applied atomically.

Key names never appear here: callers pass them in KEYS, built by `workers.keys`.
"""

from __future__ import annotations

# A group of deliveries, each stored unless its event is already stored.
# KEYS: events, shops, then per delivery: event hash, status zset, topic zset, order history zset
#       (the event hash's own key again when the delivery names no order)
# ARGV: ttl, then per delivery: its event hash fields as one JSON object of strings (`received_at`
#       and `order_id` among them), its raw body (the `raw` field), its ref (the member it gets in
#       every index) and its shops-set member ('' for none)
# Returns one flag per delivery: 1 when stored, 0 when this event (platform, shop, id) is already stored.
# A JSON object costs Redis one cjson.decode; a field, value pair each costs the caller a packed argument.
STORE_EVENTS = """
local ttl = tonumber(ARGV[1])
local out = {}
for i = 1, (#KEYS - 2) / 4 do
  local k = 2 + (i - 1) * 4
  local a = 2 + (i - 1) * 4
  if redis.call('EXISTS', KEYS[k + 1]) == 1 then
    -- Counted: a write of the duplicate's own, so that a WAIT after it also covers the original's.
    redis.call('HINCRBY', KEYS[k + 1], 'deliveries', 1)
    out[i] = 0
  else
    local meta = cjson.decode(ARGV[a])
    local fields = {'raw', ARGV[a + 1]}
    for name, value in pairs(meta) do
      fields[#fields + 1] = name
      fields[#fields + 1] = value
    end
    redis.call('HSET', KEYS[k + 1], unpack(fields))
    if ttl > 0 then redis.call('EXPIRE', KEYS[k + 1], ttl) end
    local score, ref = meta['received_at'], ARGV[a + 2]
    redis.call('ZADD', KEYS[1], score, ref)
    redis.call('ZADD', KEYS[k + 2], score, ref)
    redis.call('ZADD', KEYS[k + 3], score, ref)
    if meta['order_id'] then
      redis.call('ZADD', KEYS[k + 4], score, ref)
      if ttl > 0 then redis.call('EXPIRE', KEYS[k + 4], ttl) end
    end
    if ARGV[a + 3] ~= '' then redis.call('SADD', KEYS[2], ARGV[a + 3]) end
    out[i] = 1
  end
end
return out
"""

# Compare-and-set of one order's projection together with the status of the
# events that produced it.
# KEYS: order, orders index, shops, queued zset, dispatch zset, then per event: event, its new status zset
# ARGV: expected projection ('' = none), new projection, order id, shops-set member, processed_at,
#       then per event: status, ref, field/value count n, n field/value pairs
# Returns 1 on success, -1 when the projection changed since it was read,
# -2 when one of the events is no longer queued (another worker applied it).
APPLY_ORDER = """
local current = redis.call('GET', KEYS[1]) or ''
if current ~= ARGV[1] then return -1 end
local nevents = (#KEYS - 5) / 2
local a = 6
for e = 1, nevents do
  local ek = KEYS[5 + 2 * e - 1]
  if redis.call('HGET', ek, 'status') ~= 'queued' then return -2 end
  local n = tonumber(ARGV[a + 2])
  a = a + 3 + n
end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
redis.call('SADD', KEYS[3], ARGV[4])
a = 6
for e = 1, nevents do
  local ek = KEYS[5 + 2 * e - 1]
  local zk = KEYS[5 + 2 * e]
  local status = ARGV[a]
  local ref = ARGV[a + 1]
  local n = tonumber(ARGV[a + 2])
  local fields = {'status', status, 'processed_at', ARGV[5]}
  for i = a + 3, a + 2 + n do fields[#fields + 1] = ARGV[i] end
  redis.call('HSET', ek, unpack(fields))
  redis.call('HINCRBY', ek, 'attempts', 1)
  local score = redis.call('ZSCORE', KEYS[4], ref)
  redis.call('ZREM', KEYS[4], ref)
  redis.call('ZADD', zk, score or ARGV[5], ref)
  redis.call('ZADD', KEYS[5], ARGV[5], ref)
  a = a + 3 + n
end
return 1
"""

# Record one handler's outcome and recompute the event's status, attempts and error from all of them.
# KEYS: event, then the zset of every status in workers.keys.STATUSES order
# ARGV: handler field name, outcome json, statuses (space separated, same order as the zsets), the event's ref
# The status becomes 'failed' while any handler is failed, else the event's base state.
# Returns {new status, previous status, id, shop, topic, order id} (so the caller sees an event turn failed).
SET_HANDLER_OUTCOME = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local all = redis.call('HGETALL', KEYS[1])
local failed = false
local state = nil
local current = nil
local attempts = 0
local most = 0
local failed_name, failed_error, retry_name, retry_error = nil, nil, nil, nil
local id = ARGV[4]
for i = 1, #all, 2 do
  local f = all[i]
  if string.sub(f, 1, 8) == 'handler:' then
    local ok, o = pcall(cjson.decode, all[i + 1])
    if ok and type(o) == 'table' then
      local name = string.sub(f, 9)
      local n = tonumber(o['attempts']) or 0
      if n > most then most = n end
      local err = o['error']
      if type(err) ~= 'string' then err = '' end
      if o['status'] == 'failed' then
        failed = true
        if failed_name == nil or name < failed_name then failed_name, failed_error = name, err end
      elseif o['status'] == 'retrying' then
        if retry_name == nil or name < retry_name then retry_name, retry_error = name, err end
      end
    end
  elseif f == 'state' then state = all[i + 1]
  elseif f == 'status' then current = all[i + 1]
  elseif f == 'attempts' then attempts = tonumber(all[i + 1]) or 0
  end
end
local new = state or current
if failed then new = 'failed' end
-- attempts: the highest among the stages and handlers; error: the failed handler's, or the one waiting for
-- its retry (said so), cleared once every handler ended well
local fields = {}
if most > attempts then fields[#fields + 1] = 'attempts'; fields[#fields + 1] = tostring(most) end
fields[#fields + 1] = 'error'
if failed_name then
  fields[#fields + 1] = failed_name .. ': ' .. failed_error
elseif retry_name then
  fields[#fields + 1] = retry_name .. ': ' .. retry_error .. ' (retrying)'
else
  fields[#fields + 1] = ''
end
redis.call('HSET', KEYS[1], unpack(fields))
if new ~= current then
  local names = {}
  for s in string.gmatch(ARGV[3], '%S+') do names[#names + 1] = s end
  local score = nil
  for i, s in ipairs(names) do
    if s == current then score = redis.call('ZSCORE', KEYS[1 + i], id); redis.call('ZREM', KEYS[1 + i], id) end
  end
  for i, s in ipairs(names) do
    if s == new then redis.call('ZADD', KEYS[1 + i], score or 0, id) end
  end
  redis.call('HSET', KEYS[1], 'status', new)
end
local about = redis.call('HMGET', KEYS[1], 'id', 'shop', 'topic', 'order_id')
return {new, current or '', about[1] or '', about[2] or '', about[3] or '', about[4] or ''}
"""

# Move an event to a new status (replay), keeping its received-time score.
# KEYS: event, then the zset of every status in STATUSES order
# ARGV: new status, statuses (space separated), the event's ref, then field/value pairs to set
SET_STATUS = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local id = ARGV[3]
local names = {}
for s in string.gmatch(ARGV[2], '%S+') do names[#names + 1] = s end
local score = nil
for i, s in ipairs(names) do
  local z = redis.call('ZSCORE', KEYS[1 + i], id)
  if z then score = z; redis.call('ZREM', KEYS[1 + i], id) end
end
for i, s in ipairs(names) do
  if s == ARGV[1] then redis.call('ZADD', KEYS[1 + i], score or 0, id) end
end
local fields = {'status', ARGV[1]}
for i = 4, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(fields))
return 1
"""
