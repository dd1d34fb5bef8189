-- upsert_agent: create an agent (offline) or change its name and skills.
-- ARGV: prefix, id, name, skills ("billing=5,support=3"), now
local id, name, skills, now = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local ak = key('agent', id)
local state = redis.call('HGET', ak, 'state')
for _, s in ipairs(skills_of(id)) do redis.call('SREM', key('staff', s[1]), id) end
if state == 'available' then make_unavailable(id) end
redis.call('HSET', ak, 'id', id, 'name', name, 'skills', skills)
if not state then
  state = 'offline'
  set_state(id, state, now, '')
end
for _, s in ipairs(skills_of(id)) do redis.call('SADD', key('staff', s[1]), id) end
if state == 'available' then
  make_available(id, tonumber(redis.call('HGET', ak, 'idle')) or now)
end
redis.call('SADD', key('agents'), id)
return state
