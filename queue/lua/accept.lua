-- accept: the agent took the offered call. Counts it answered with the time
-- it waited in this skill's queue.
-- ARGV: prefix, call, agent, now, day, service level threshold ms, window ms
local id, agent, now, day, sl, window =
  ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7])
local ck, ak = key('call', id), key('agent', agent)
local c = redis.call('HMGET', ck, 'state', 'agent', 'skill', 'enq')
if not c[1] then return redis.error_reply('GONE') end
if c[1] ~= 'offered' or c[2] ~= agent then return redis.error_reply('NOTOFFERED ' .. c[1]) end
local a = redis.call('HMGET', ak, 'state', 'call')
if a[1] ~= 'reserved' or a[2] ~= id then return redis.error_reply('NOTRESERVED ' .. tostring(a[1])) end
local skill = c[3]
local wait = now - tonumber(c[4])
if wait < 0 then wait = 0 end
redis.call('HSET', ck, 'state', 'connected', 'connected_at', now)
set_state(agent, 'on_call', now, '')
redis.call('HSET', ak, 'hskill', skill, 'hstart', now)
stat(skill, day, 'answered', 1)
stat(skill, day, 'wait_ms', wait)
if wait <= sl then stat(skill, day, 'answered_sl', 1) end
local sk = key('served', skill)
redis.call('ZADD', sk, now, id .. ':' .. wait)
redis.call('ZREMRANGEBYSCORE', sk, '-inf', '(' .. (now - window))
return wait
