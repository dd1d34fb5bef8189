-- complete: a connected call ended; the agent goes to wrap-up. The handle
-- time is recorded when wrap-up ends (agent_state).
-- ARGV: prefix, call, now
local id, now = ARGV[2], tonumber(ARGV[3])
local ck = key('call', id)
local c = redis.call('HMGET', ck, 'state', 'agent', 'owner')
if not c[1] then return redis.error_reply('GONE') end
if c[1] ~= 'connected' then return redis.error_reply('NOTCONNECTED ' .. c[1]) end
end_connected(id, c[2], c[3], now)
return c[2]
