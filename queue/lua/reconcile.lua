-- reconcile: repair what an instance owns after a start or a reconnect,
-- and what crashed instances left behind.
--  * calls this instance owns in Redis but no longer has: gone (lost);
--  * calls of instances whose heartbeat stopped: gone (lost);
--  * queue entries whose call is missing or not waiting: removed;
--  * agents reserved or on a call that is not theirs any more: freed;
--    available agents put back in (and others taken out of) the
--    available sets.
-- ARGV: prefix, owner, now, day, stale before (ms), live call id, ...
-- Returns {lost, queue entries removed, agents repaired, missing id, ...}
-- where the missing ids are live calls Redis does not have.
local owner, now, day, stale = ARGV[2], tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5])
local live = {}
for i = 6, #ARGV do live[ARGV[i]] = true end
local lost, removed, repaired = 0, 0, 0

local function lose(id, own)
  local c = redis.call('HMGET', key('call', id), 'state', 'skill', 'enq', 'agent')
  if c[1] then
    wait_rem(c[2], id)
    if c[1] == 'offered' then release_offer(c[4], id, now) end
    if c[1] ~= 'connected' then
      stat(c[2], day, 'lost', 1)
    end
    lost = lost + 1
  end
  drop_call(id, own)
end

for _, id in ipairs(redis.call('SMEMBERS', key('owned', owner))) do
  if not live[id] then lose(id, owner) end
end
redis.call('ZADD', key('instances'), now, owner)
local dead = {}
for _, inst in ipairs(redis.call('ZRANGEBYSCORE', key('instances'), '-inf', '(' .. stale)) do
  if inst ~= owner then
    for _, id in ipairs(redis.call('SMEMBERS', key('owned', inst))) do lose(id, inst) end
    redis.call('DEL', key('owned', inst))
    redis.call('ZREM', key('instances'), inst)
    dead[inst] = true
  end
end
-- Agents logged in on a crashed instance are logged out: their browsers
-- log in again wherever they reconnect.
if next(dead) then
  for _, id in ipairs(redis.call('SMEMBERS', key('agents'))) do
    local ak = key('agent', id)
    local a = redis.call('HMGET', ak, 'inst', 'state')
    if a[1] and dead[a[1]] then
      redis.call('HDEL', ak, 'inst')
      if a[2] ~= 'reserved' and a[2] ~= 'on_call' then
        make_unavailable(id)
        set_state(id, 'offline', now, '')
      end
    end
  end
end

for _, skill in ipairs(redis.call('SMEMBERS', key('skills'))) do
  for _, id in ipairs(redis.call('ZRANGE', key('wait', skill), 0, -1)) do
    local c = redis.call('HMGET', key('call', id), 'state', 'skill')
    if c[1] ~= 'waiting' or c[2] ~= skill then
      wait_rem(skill, id)
      removed = removed + 1
    end
  end
  for _, id in ipairs(redis.call('ZRANGE', key('since', skill), 0, -1)) do
    if not redis.call('ZSCORE', key('wait', skill), id) then redis.call('ZREM', key('since', skill), id) end
  end
end

for _, id in ipairs(redis.call('SMEMBERS', key('agents'))) do
  local ak = key('agent', id)
  local a = redis.call('HMGET', ak, 'state', 'call', 'idle')
  if a[1] == 'reserved' or a[1] == 'on_call' then
    local c = redis.call('HMGET', key('call', a[2] or ''), 'state', 'agent')
    local want = (a[1] == 'reserved') and 'offered' or 'connected'
    if c[1] ~= want or c[2] ~= id then
      redis.call('HDEL', ak, 'call')
      if a[1] == 'reserved' then
        set_state(id, 'available', now, '')
        make_available(id, tonumber(a[3]) or now)
      else
        set_state(id, 'wrap_up', now, '')
      end
      repaired = repaired + 1
    end
  elseif a[1] == 'available' then
    make_available(id, tonumber(a[3]) or now)
  else
    make_unavailable(id)
  end
end

-- The epoch marks a Redis whose state this reconciliation has seen: its
-- absence tells every instance that Redis lost its data.
redis.call('SET', key('epoch'), now, 'NX')

local out = {lost, removed, repaired}
for id in pairs(live) do
  if redis.call('EXISTS', key('call', id)) == 0 then out[#out + 1] = id end
end
return out
