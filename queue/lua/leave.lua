-- leave: a waiting caller leaves the queue on purpose (back to the menu,
-- to a flow node on max wait); counted under the given field.
-- ARGV: prefix, call, now, day, field
local id, now, day, field = ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]
local ck = key('call', id)
local c = redis.call('HMGET', ck, 'state', 'skill', 'owner')
if not c[1] then return redis.error_reply('GONE') end
if c[1] ~= 'waiting' then return redis.error_reply('BUSY ' .. c[1]) end
wait_rem(c[2], id)
stat(c[2], day, field, 1)
drop_call(id, c[3])
return c[2]
