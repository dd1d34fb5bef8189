-- Shared by every queue script (prepended by scripts.go). ARGV[1] is the
-- key prefix with its hash tag ("ivrd:{q}"): every key a script touches
-- shares that tag, so the scripts also run on Redis Cluster.
local P = ARGV[1]
local function key(...) return P .. ':' .. table.concat({...}, ':') end
local TWO44 = 17592186044416

-- fmt writes a score without an exponent (Redis parses either, but member
-- scores end up in logs and tests).
local function fmt(n) return string.format('%.0f', n) end

-- skills_of parses "billing=5,support=3" into {{"billing",5},{"support",3}}.
local function skills_of(agent)
  local t = {}
  local s = redis.call('HGET', key('agent', agent), 'skills')
  if not s then return t end
  for name, lvl in string.gmatch(s, '([^,=]+)=(%d+)') do t[#t + 1] = {name, tonumber(lvl)} end
  return t
end

-- avail_score orders available agents: longest idle first, or by
-- proficiency (then idle) for skills routed that way.
local function avail_score(skill, level, idle)
  if redis.call('HGET', key('routing'), skill) == 'proficiency' then
    return (100 - level) * TWO44 + idle
  end
  return idle
end

local function make_available(agent, idle)
  redis.call('HSET', key('agent', agent), 'idle', idle)
  for _, s in ipairs(skills_of(agent)) do
    redis.call('ZADD', key('avail', s[1]), fmt(avail_score(s[1], s[2], idle)), agent)
  end
end

local function make_unavailable(agent)
  for _, s in ipairs(skills_of(agent)) do redis.call('ZREM', key('avail', s[1]), agent) end
end

local function set_state(agent, state, now, reason)
  redis.call('HSET', key('agent', agent), 'state', state, 'since', now, 'reason', reason or '')
end

-- stat adds to a skill's counters of the day; a new day starts them afresh.
local function stat(skill, day, field, by)
  local sk = key('stats', skill)
  if redis.call('HGET', sk, 'day') ~= day then
    redis.call('DEL', sk)
    redis.call('HSET', sk, 'day', day)
  end
  redis.call('HINCRBY', sk, field, by)
end

-- end_handle records the handle time (talk + wrap-up) of the agent's last
-- call, and the wrap-up time alone, when the agent leaves wrap-up.
local function end_handle(agent, now)
  local ak = key('agent', agent)
  local h = redis.call('HMGET', ak, 'hskill', 'hstart', 'state', 'since')
  if h[1] and h[2] then
    local lk = key('aht', h[1])
    redis.call('LPUSH', lk, now - tonumber(h[2]))
    redis.call('LTRIM', lk, 0, 99)
    if h[3] == 'wrap_up' and h[4] then
      local wk = key('wrap', h[1])
      redis.call('LPUSH', wk, now - tonumber(h[4]))
      redis.call('LTRIM', wk, 0, 99)
    end
  end
  redis.call('HDEL', ak, 'hskill', 'hstart')
end

-- drop_call deletes a call that is no longer in a queue or with an agent.
local function drop_call(id, owner)
  redis.call('DEL', key('call', id))
  if owner then redis.call('SREM', key('owned', owner), id) end
end

-- end_connected ends a connected call: its agent (if still on it) goes to
-- wrap-up, and the call's entry is deleted.
local function end_connected(id, agent, owner, now)
  local ak = key('agent', agent)
  local a = redis.call('HMGET', ak, 'state', 'call')
  if a[1] == 'on_call' and a[2] == id then
    set_state(agent, 'wrap_up', now, '')
    redis.call('HDEL', ak, 'call')
  end
  drop_call(id, owner)
end

-- release_offer puts the agent a call was offered to back where it was:
-- available, keeping its place in the idle order.
local function release_offer(agent, id, now)
  if not agent or agent == '' then return end
  local a = redis.call('HMGET', key('agent', agent), 'state', 'call', 'idle')
  if a[1] == 'reserved' and a[2] == id then
    set_state(agent, 'available', now, '')
    redis.call('HDEL', key('agent', agent), 'call')
    make_available(agent, tonumber(a[3]) or now)
  end
end

-- wait_add and wait_rem keep a skill's queue (by priority, then arrival)
-- and its arrival index (for the longest wait) together.
local function wait_add(skill, id, score, enq)
  redis.call('ZADD', key('wait', skill), score, id)
  redis.call('ZADD', key('since', skill), enq, id)
end

local function wait_rem(skill, id)
  redis.call('ZREM', key('wait', skill), id)
  redis.call('ZREM', key('since', skill), id)
end
