-- dispatch: pair waiting callers with available agents. Each round takes
-- the best caller (priority, then arrival) among the skills that have an
-- available agent, and the best agent for that skill (longest idle, or most
-- proficient); the caller becomes offered and the agent reserved in the
-- same step, so no caller or agent is ever given out twice.
-- ARGV: prefix, now, max, skill, ...
local now, max = tonumber(ARGV[2]), tonumber(ARGV[3])
local out = {}
local n = 0
while n < max do
  local best, bestSkill, bestScore = nil, nil, nil
  for i = 4, #ARGV do
    local skill = ARGV[i]
    local wk, vk = key('wait', skill), key('avail', skill)
    local head = redis.call('ZRANGE', wk, 0, 0, 'WITHSCORES')
    -- Skip (and clean) heads that are no longer waiting.
    while head[1] and redis.call('HGET', key('call', head[1]), 'state') ~= 'waiting' do
      wait_rem(skill, head[1])
      head = redis.call('ZRANGE', wk, 0, 0, 'WITHSCORES')
    end
    if head[1] and redis.call('ZCARD', vk) > 0 then
      local sc = tonumber(head[2])
      if not bestScore or sc < bestScore then best, bestSkill, bestScore = head[1], skill, sc end
    end
  end
  if not best then break end
  local vk = key('avail', bestSkill)
  local agent = nil
  while not agent do
    local a = redis.call('ZRANGE', vk, 0, 0)
    if not a[1] then break end
    if redis.call('HGET', key('agent', a[1]), 'state') == 'available' then
      agent = a[1]
    else
      redis.call('ZREM', vk, a[1])
    end
  end
  if agent then
    make_unavailable(agent)
    set_state(agent, 'reserved', now, '')
    redis.call('HSET', key('agent', agent), 'call', best)
    local ck = key('call', best)
    wait_rem(bestSkill, best)
    redis.call('HSET', ck, 'state', 'offered', 'agent', agent, 'offered_at', now)
    local owner = redis.call('HGET', ck, 'owner') or ''
    out[#out + 1] = best
    out[#out + 1] = agent
    out[#out + 1] = bestSkill
    out[#out + 1] = owner
    n = n + 1
  end
end
return out
