-- requeue: an offer failed (no answer, declined, the agent vanished). The
-- caller goes back to the head of its queue; the agent becomes available
-- again or not_ready with a reason.
-- ARGV: prefix, call, agent, agent state (available|not_ready), reason, now
local id, agent, astate, reason, now = ARGV[2], ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6])
local ck = key('call', id)
local c = redis.call('HMGET', ck, 'state', 'agent', 'skill', 'score')
if not c[1] then return redis.error_reply('GONE') end
if (c[1] ~= 'offered' and c[1] ~= 'connected') or c[2] ~= agent then
  return redis.error_reply('NOTOFFERED ' .. c[1])
end
local wk = key('wait', c[3])
local score = tonumber(c[4])
local head = redis.call('ZRANGE', wk, 0, 0, 'WITHSCORES')
if head[2] and tonumber(head[2]) <= score then score = tonumber(head[2]) - 1 end
redis.call('HSET', ck, 'state', 'waiting', 'score', fmt(score))
redis.call('HDEL', ck, 'agent', 'offered_at', 'connected_at')
redis.call('ZADD', wk, fmt(score), id)
redis.call('ZADD', key('since', c[3]), redis.call('HGET', ck, 'enq'), id)
local ak = key('agent', agent)
local a = redis.call('HMGET', ak, 'state', 'call')
if (a[1] == 'reserved' or a[1] == 'on_call') and a[2] == id then
  redis.call('HDEL', ak, 'call', 'hskill', 'hstart')
  if astate == 'available' then
    set_state(agent, 'available', now, '')
    make_available(agent, now)
  else
    set_state(agent, 'not_ready', now, reason)
  end
end
return redis.call('ZRANK', wk, id) + 1
