-- agent_instance: the ivrd instance where the agent is logged in ("" for
-- none): only callers that instance holds are offered to the agent.
-- ARGV: prefix, id, instance
local ak = key('agent', ARGV[2])
if redis.call('EXISTS', ak) == 0 then return redis.error_reply('NOAGENT') end
if ARGV[3] == '' then
  redis.call('HDEL', ak, 'inst')
else
  redis.call('HSET', ak, 'inst', ARGV[3])
end
return 1
