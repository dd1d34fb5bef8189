-- snapshot: what the estimate and the statistics of one skill need, read
-- in one consistent step.
-- ARGV: prefix, skill, now, window ms
-- Returns: {waiting, oldest enq or false, {stats field, value, ...},
--           {agent, state, since, ...}, {handle ms, ...},
--           served in window, oldest served time in window or false,
--           {wrap-up ms, ...}}
local skill, now, window = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local waiting = redis.call('ZCARD', key('wait', skill))
local oldest = redis.call('ZRANGE', key('since', skill), 0, 0, 'WITHSCORES')
local agents = {}
for _, id in ipairs(redis.call('SMEMBERS', key('staff', skill))) do
  local a = redis.call('HMGET', key('agent', id), 'state', 'since')
  if a[1] then
    agents[#agents + 1] = id
    agents[#agents + 1] = a[1]
    agents[#agents + 1] = a[2]
  end
end
local sk = key('served', skill)
redis.call('ZREMRANGEBYSCORE', sk, '-inf', '(' .. (now - window))
local served = redis.call('ZCARD', sk)
local first = redis.call('ZRANGE', sk, 0, 0, 'WITHSCORES')
return {waiting, oldest[2] or false, redis.call('HGETALL', key('stats', skill)), agents,
  redis.call('LRANGE', key('aht', skill), 0, -1), served, first[2] or false,
  redis.call('LRANGE', key('wrap', skill), 0, -1)}
