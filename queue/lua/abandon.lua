-- abandon: the caller is gone before reaching an agent (hung up, or lost
-- with a crashed instance). Counted under the given field ('abandoned' or
-- 'lost') with the time waited. A connected call is completed instead.
-- ARGV: prefix, call, now, day, field
local id, now, day, field = ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]
local ck = key('call', id)
local c = redis.call('HMGET', ck, 'state', 'skill', 'enq', 'agent', 'owner')
if not c[1] then return false end
if c[1] == 'connected' then
  end_connected(id, c[4], c[5], now)
  return 'connected'
end
wait_rem(c[2], id)
if c[1] == 'offered' then release_offer(c[4], id, now) end
local wait = now - tonumber(c[3])
if wait < 0 then wait = 0 end
stat(c[2], day, field, 1)
stat(c[2], day, field .. '_ms', wait)
drop_call(id, c[5])
return c[1]
