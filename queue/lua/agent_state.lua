-- agent_state: an agent chooses available, not_ready (with a reason) or
-- offline, or ends wrap-up. Reserved and on_call change only through the
-- call's own transitions (accept, requeue, abandon, complete).
-- ARGV: prefix, id, state, reason, now
local id, want, reason, now = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local ak = key('agent', id)
local cur = redis.call('HGET', ak, 'state')
if not cur then return redis.error_reply('NOAGENT') end
if cur == 'reserved' or cur == 'on_call' then return redis.error_reply('BUSY ' .. cur) end
if want ~= 'available' and want ~= 'not_ready' and want ~= 'offline' then
  return redis.error_reply('BADSTATE ' .. want)
end
if cur == want and want ~= 'not_ready' then return cur end
if cur == 'wrap_up' then end_handle(id, now) end
if want == 'available' then
  set_state(id, 'available', now, '')
  make_available(id, now)
else
  if cur == 'available' then make_unavailable(id) end
  set_state(id, want, now, reason)
end
return cur
