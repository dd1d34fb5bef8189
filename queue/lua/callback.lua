-- callback: a waiting caller asks to be called back. The request takes the
-- caller's place (same score) in the skill's callback list and the caller
-- leaves the queue.
-- ARGV: prefix, call, number, now, day
local id, number, now, day = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local ck = key('call', id)
local c = redis.call('HMGET', ck, 'state', 'skill', 'score', 'enq', 'owner', 'name', 'customer_id')
if not c[1] then return redis.error_reply('GONE') end
if c[1] ~= 'waiting' then return redis.error_reply('BUSY ' .. c[1]) end
wait_rem(c[2], id)
redis.call('ZADD', key('callbacks', c[2]), c[3], id)
redis.call('HSET', key('callback', id), 'id', id, 'skill', c[2], 'number', number,
  'requested_at', now, 'enq', c[4], 'name', c[6] or '', 'customer_id', c[7] or '')
stat(c[2], day, 'callbacks', 1)
drop_call(id, c[5])
return redis.call('ZRANK', key('callbacks', c[2]), id) + 1
