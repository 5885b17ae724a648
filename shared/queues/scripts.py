"""Lua scripts that make each queue operation one atomic server-side step.

Why Lua: a producer must see "full" and refuse *before* adding (XADD MAXLEN ~ would instead trim, i.e.
silently drop, unconsumed work), acknowledging must delete the entry in the same step (so that a stream's
length is its outstanding work, which is what the cap counts), and dead-lettering must copy and
acknowledge together (so an entry is never lost between the two nor duplicated). One script per batch
also means one round trip and, with `appendfsync always`, one fsync per batch instead of one per entry.

Scripts are sent with EVAL (Redis caches the compiled script by its digest): unlike EVALSHA this needs
no reload after a Redis restart, and the ~1 KB of script text is small beside a batch of bodies.
Every script touches the keys of one stream only (`<stream>`, `<stream>.dead`, `<stream>.errors`), except
PRODUCE_GUARDED, which also moves the producer's cursor (a hash field of its own) in the same step.
"""

from __future__ import annotations

_HELPERS = """
local function id_after(a, b)
  local am, as = string.match(a, '^(%d+)%-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)%-(%d+)$')
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  return am > bm or (am == bm and as > bs)
end

-- Deletes those of `ids` that no consumer group needs any more. The calling group has just
-- acknowledged them; another group still needs one it has not been delivered yet or has pending.
local function delete_finished(stream, group, ids)
  if redis.call('EXISTS', stream) == 0 then return end
  local others = {}
  for _, info in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
    local name, last
    for i = 1, #info, 2 do
      if info[i] == 'name' then name = info[i + 1] elseif info[i] == 'last-delivered-id' then last = info[i + 1] end
    end
    if name ~= group then others[#others + 1] = {name, last} end
  end
  local finished = {}
  for _, id in ipairs(ids) do
    local needed = false
    for _, other in ipairs(others) do
      if id_after(id, other[2]) or #redis.call('XPENDING', stream, other[1], id, id, 1) > 0 then
        needed = true
        break
      end
    end
    if not needed then finished[#finished + 1] = id end
  end
  if #finished > 0 then redis.call('XDEL', stream, unpack(finished)) end
end

local function forget_errors(errors, group, ids)
  if redis.call('HLEN', errors) > 0 then
    local fields = {}
    for i, id in ipairs(ids) do fields[i] = group .. '/' .. id end
    redis.call('HDEL', errors, unpack(fields))
  end
end

-- An entry's body and type; false (nil in the reply) for a missing one.
local function body_and_type(fields)
  local body, kind = false, false
  for i = 1, #fields, 2 do
    if fields[i] == 'body' then body = fields[i + 1] elseif fields[i] == 'type' then kind = fields[i + 1] end
  end
  return body, kind
end

local function ack(stream, errors, group, ids)
  redis.call('XACK', stream, group, unpack(ids))
  delete_finished(stream, group, ids)
  forget_errors(errors, group, ids)
end
"""

# KEYS: stream. ARGV: cap, type name, body... -> list of new ids, or the stream's length when full.
PRODUCE = """
local length = redis.call('XLEN', KEYS[1])
if length + #ARGV - 2 > tonumber(ARGV[1]) then return length end
local ids = {}
for i = 3, #ARGV do ids[#ids + 1] = redis.call('XADD', KEYS[1], '*', 'body', ARGV[i], 'type', ARGV[2]) end
return ids
"""

# A produce that moves a cursor in the same step: the entries are written only while the hash field still holds
# the expected value, which then becomes the new one. KEYS: stream, guard hash. ARGV: cap, type name, field,
# expected, new, body... -> list of new ids; the stream's length when full; nil when the field had moved on.
PRODUCE_GUARDED = """
if (redis.call('HGET', KEYS[2], ARGV[3]) or '') ~= ARGV[4] then return false end
local length = redis.call('XLEN', KEYS[1])
if length + #ARGV - 5 > tonumber(ARGV[1]) then return length end
local ids = {}
for i = 6, #ARGV do ids[#ids + 1] = redis.call('XADD', KEYS[1], '*', 'body', ARGV[i], 'type', ARGV[2]) end
redis.call('HSET', KEYS[2], ARGV[3], ARGV[5])
return ids
"""

# KEYS: stream, errors hash. ARGV: group, id... -> number of ids.
ACK = (
    _HELPERS
    + """
local ids = {unpack(ARGV, 2)}
ack(KEYS[1], KEYS[2], ARGV[1], ids)
return #ids
"""
)

# The consumer's hot path, one call per batch: ack the previous batch, then read new entries without
# blocking (scripts cannot block). The reply is flat, so parsing it costs little and does not depend
# on the client's RESP version. KEYS: stream, errors hash. ARGV: group, consumer, count, ack id...
# -> {id, type, body, ...}; when there was nothing to read, {id} of the stream's last entry ('0-0' when
# empty): an XREAD BLOCK after that id wakes exactly when a new entry arrives.
READ = (
    _HELPERS
    + """
local ids = {unpack(ARGV, 4)}
if #ids > 0 then ack(KEYS[1], KEYS[2], ARGV[1], ids) end
local reply = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', ARGV[3], 'STREAMS', KEYS[1], '>')
if not reply then
  local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
  if #last == 1 then return {last[1][1]} end
  return {'0-0'}
end
local out = {}
for _, entry in ipairs(reply[1][2]) do
  local body, kind = body_and_type(entry[2])
  out[#out + 1] = entry[1]
  out[#out + 1] = kind
  out[#out + 1] = body
end
return out
"""
)

# KEYS: stream. ARGV: group, consumer, min idle ms, cursor, count
# -> {next cursor, id, deliveries, type, body, ...}; type and body are nil for an entry deleted while
# pending (Redis 6.2 still hands those out).
RECLAIM = (
    _HELPERS
    + """
local reply = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], 'COUNT', ARGV[5])
local out = {reply[1]}
for _, entry in ipairs(reply[2]) do
  local id = entry[1]
  local pending = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)
  local deliveries = 1
  if #pending == 1 then deliveries = pending[1][4] end
  local body, kind = false, false
  if entry[2] then body, kind = body_and_type(entry[2]) end
  out[#out + 1] = id
  out[#out + 1] = deliveries
  out[#out + 1] = kind
  out[#out + 1] = body
end
return out
"""
)

# KEYS: stream, dead-letter stream, errors hash. ARGV: group, then (id, deliveries, error) per entry.
# Only entries still pending in the group move, so two consumers racing to dead-letter one entry
# (after a reclaim) add it once. -> number moved.
DEAD_LETTER = (
    _HELPERS
    + """
local moved = {}
for i = 2, #ARGV, 3 do
  local id = ARGV[i]
  if redis.call('XACK', KEYS[1], ARGV[1], id) == 1 then
    local body, kind = '', ''
    local entry = redis.call('XRANGE', KEYS[1], id, id)
    if #entry == 1 then body, kind = body_and_type(entry[1][2]) end
    body, kind = body or '', kind or ''
    local error = ARGV[i + 2]
    local earlier = redis.call('HGET', KEYS[3], ARGV[1] .. '/' .. id)
    if earlier and error ~= earlier then error = error .. '; last handler error: ' .. earlier end
    redis.call('XADD', KEYS[2], '*', 'body', body, 'type', kind, 'stream', KEYS[1], 'id', id,
      'group', ARGV[1], 'deliveries', ARGV[i + 1], 'error', error)
    moved[#moved + 1] = id
  end
end
if #moved > 0 then
  delete_finished(KEYS[1], ARGV[1], moved)
  forget_errors(KEYS[3], ARGV[1], moved)
end
return #moved
"""
)

# KEYS: dead-letter stream, stream. ARGV: cap, dead-letter id... -> {number requeued}, or the
# stream's length when the requeued entries would not fit under the cap.
REQUEUE = (
    _HELPERS
    + """
local found = {}
for i = 2, #ARGV do
  local entry = redis.call('XRANGE', KEYS[1], ARGV[i], ARGV[i])
  if #entry == 1 then found[#found + 1] = entry[1] end
end
local length = redis.call('XLEN', KEYS[2])
if length + #found > tonumber(ARGV[1]) then return length end
for _, entry in ipairs(found) do
  local body, kind = body_and_type(entry[2])
  redis.call('XADD', KEYS[2], '*', 'body', body or '', 'type', kind or '')
  redis.call('XDEL', KEYS[1], entry[1])
end
return {#found}
"""
)

# KEYS: stream, dead-letter stream -> {length, dead letters, then per group: name, consumers, pending,
# lag}. Lag is Redis 7's figure; where XINFO has none (Redis 6.2, or 7 when deletions make it unsure)
# the entries after the group's last-delivered id are counted.
LAG = """
local out = {redis.call('XLEN', KEYS[1]), redis.call('XLEN', KEYS[2])}
if redis.call('EXISTS', KEYS[1]) == 0 then return out end
for _, info in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local group = {}
  for i = 1, #info, 2 do group[info[i]] = info[i + 1] end
  local lag = group['lag']
  if not lag then lag = #redis.call('XRANGE', KEYS[1], '(' .. group['last-delivered-id'], '+') end
  out[#out + 1] = group['name']
  out[#out + 1] = group['consumers']
  out[#out + 1] = group['pending']
  out[#out + 1] = lag
end
return out
"""
