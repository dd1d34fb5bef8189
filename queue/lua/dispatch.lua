-- dispatch: pair waiting callers with available agents. Each round takes
-- the best caller (priority, then arrival) among the skills that have an
-- available agent for it, and the best such agent for that skill (longest
-- idle, or most proficient); the caller becomes offered and the agent
-- reserved in the same step, so no caller or agent is ever given out twice.
--
-- An agent logged in on one ivrd instance (field inst) can only take the
-- callers whose SIP call that instance holds (field owner): the audio
-- bridge joins the two on one machine. Among the first callers of a skill
-- the best one with such an agent is taken, so one instance's callers do
-- not hold up another's.
-- ARGV: prefix, now, max, skill, ...
local now, max = tonumber(ARGV[2]), tonumber(ARGV[3])
local LOOK = 10 -- callers and agents looked at per skill and round

-- eligible returns the best available agent of the skill for a caller
-- held by owner, cleaning out agents no longer available.
local function eligible(skill, owner)
  local vk = key('avail', skill)
  for _, id in ipairs(redis.call('ZRANGE', vk, 0, LOOK - 1)) do
    local a = redis.call('HMGET', key('agent', id), 'state', 'inst')
    if a[1] ~= 'available' then
      redis.call('ZREM', vk, id)
    elseif not a[2] or a[2] == '' or a[2] == owner then
      return id
    end
  end
  return nil
end

local out = {}
local n = 0
while n < max do
  local best, bestSkill, bestScore, bestAgent = nil, nil, nil, nil
  for i = 4, #ARGV do
    local skill = ARGV[i]
    if redis.call('ZCARD', key('avail', skill)) > 0 then
      local heads = redis.call('ZRANGE', key('wait', skill), 0, LOOK - 1, 'WITHSCORES')
      for j = 1, #heads, 2 do
        local id, sc = heads[j], tonumber(heads[j + 1])
        if bestScore and sc >= bestScore then break end
        local c = redis.call('HMGET', key('call', id), 'state', 'owner')
        if c[1] ~= 'waiting' then
          wait_rem(skill, id) -- not waiting any more: clean it out
        else
          local agent = eligible(skill, c[2] or '')
          if agent then
            best, bestSkill, bestScore, bestAgent = id, skill, sc, agent
            break
          end
        end
      end
    end
  end
  if not best then break end
  make_unavailable(bestAgent)
  set_state(bestAgent, 'reserved', now, '')
  redis.call('HSET', key('agent', bestAgent), 'call', best)
  local ck = key('call', best)
  wait_rem(bestSkill, best)
  redis.call('HSET', ck, 'state', 'offered', 'agent', bestAgent, 'offered_at', now)
  out[#out + 1] = best
  out[#out + 1] = bestAgent
  out[#out + 1] = bestSkill
  out[#out + 1] = redis.call('HGET', ck, 'owner') or ''
  n = n + 1
end
return out
