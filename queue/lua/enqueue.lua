-- enqueue: put a call in a skill's queue, or move it there from another
-- skill (overflow), or put it back after Redis lost it (count = 0).
-- ARGV: prefix, id, skill, score, enq, owner, day, count, field, value, ...
local id, skill, score, enq, owner, day, count =
  ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local ck = key('call', id)
local c = redis.call('HMGET', ck, 'state', 'skill')
if c[1] and c[1] ~= 'waiting' then return redis.error_reply('BUSY ' .. c[1]) end
if c[2] and c[2] ~= skill then
  wait_rem(c[2], id)
  if count == '1' then stat(c[2], day, 'overflowed', 1) end
end
for i = 9, #ARGV, 2 do redis.call('HSET', ck, ARGV[i], ARGV[i + 1]) end
redis.call('HSET', ck, 'id', id, 'skill', skill, 'score', score, 'enq', enq, 'owner', owner, 'state', 'waiting')
redis.call('HDEL', ck, 'agent')
wait_add(skill, id, score, enq)
redis.call('SADD', key('owned', owner), id)
redis.call('SADD', key('skills'), skill)
if count == '1' then stat(skill, day, 'offered', 1) end
return redis.call('ZRANK', key('wait', skill), id) + 1
