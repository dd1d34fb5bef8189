-- remove_agent: delete an agent that has no call.
-- ARGV: prefix, id
local id = ARGV[2]
local ak = key('agent', id)
local state = redis.call('HGET', ak, 'state')
if not state then return redis.error_reply('NOAGENT') end
if state == 'reserved' or state == 'on_call' then return redis.error_reply('BUSY ' .. state) end
make_unavailable(id)
for _, s in ipairs(skills_of(id)) do redis.call('SREM', key('staff', s[1]), id) end
redis.call('DEL', ak)
redis.call('SREM', key('agents'), id)
return state
